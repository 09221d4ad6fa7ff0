"""In-memory execution → owning-clients index over the request store, fed by one long-lived K/V watch."""

from __future__ import annotations

import json
import time
from typing import Any


class RequestIndex:
    """execution_id → {request_id: client_id}; authoritative only while `ready` (watch caught up)."""

    def __init__(self, ttl_secs: float) -> None:
        self.ttl = ttl_secs
        self.ready = False
        self._by_exec: dict[str, dict[str, str]] = {}
        self._of: dict[str, tuple[str, float]] = {}  # request_id → (execution_id, created_at)

    def reset(self) -> None:
        """Forget everything (a new watch replays the bucket)."""
        self.ready = False
        self._by_exec.clear()
        self._of.clear()

    def put(self, request_id: str, entry: dict[str, Any]) -> None:
        """Index one pending request (write-through on this replica, or a watched put)."""
        eid, client = entry.get("execution_id"), entry.get("client_id")
        if not eid or not client:
            return
        self.remove(request_id)
        created = entry.get("created_at")
        at = float(created) if isinstance(created, int | float) else time.time()
        self._by_exec.setdefault(str(eid), {})[request_id] = str(client)
        self._of[request_id] = (str(eid), at)

    def remove(self, request_id: str) -> None:
        """Drop one request (deleted, purged or expired)."""
        prev = self._of.pop(request_id, None)
        if prev is None:
            return
        clients = self._by_exec.get(prev[0])
        if clients is not None:
            clients.pop(request_id, None)
            if not clients:
                del self._by_exec[prev[0]]

    def apply(self, key: str, value: bytes | None, deleted: bool) -> None:
        """One watched `req.<id>` update."""
        if not key.startswith("req."):
            return
        rid = key[4:]
        if deleted or not value:
            self.remove(rid)
            return
        try:
            entry = json.loads(value)
        except ValueError:
            return
        if isinstance(entry, dict):
            self.put(rid, entry)

    def clients(self, execution_id: str) -> list[str]:
        """Client ids with a live pending request for this execution (TTL-expired ones dropped)."""
        found = self._by_exec.get(execution_id)
        if not found:
            return []
        horizon = time.time() - self.ttl
        out = []
        for rid, client in list(found.items()):
            # K/V max_age expiry emits no delete to older servers' watchers: age out here too.
            if self._of[rid][1] < horizon:
                self.remove(rid)
            else:
                out.append(client)
        return out

    def __len__(self) -> int:
        return len(self._of)
