"""Parsed playbooks by catalog id; catalog rows never change content, so the cache never goes stale."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from app.db.types import Executor
from app.domain import Playbook, parse_playbook
from app.errors import NotFound

_CACHE_MAX = 512


@dataclass(frozen=True)
class CatalogPlaybook:
    catalog_id: int
    path: str
    version: int
    kind: str
    playbook: Playbook


class PlaybookCache:
    """A small LRU of parsed playbooks."""

    def __init__(self) -> None:
        self._items: OrderedDict[int, CatalogPlaybook] = OrderedDict()

    async def get(self, conn: Executor, catalog_id: int) -> CatalogPlaybook:
        """The parsed playbook of a catalog row (404 when it does not exist)."""
        hit = self._items.get(catalog_id)
        if hit is not None:
            self._items.move_to_end(catalog_id)
            return hit
        row = await conn.fetchrow(
            "SELECT catalog_id, path, version, kind, content FROM catalog WHERE catalog_id = $1", catalog_id
        )
        if row is None:
            raise NotFound(f"Playbook not found: catalog_id {catalog_id}")
        pb, _ = parse_playbook(row["content"] or "")
        item = CatalogPlaybook(row["catalog_id"], row["path"], row["version"], row["kind"], pb)
        self._items[catalog_id] = item
        if len(self._items) > _CACHE_MAX:
            self._items.popitem(last=False)
        return item
