"""The request store (gateway.md §7.2): req./exec./creq./client. keys in the NATS K/V bucket `requests`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from typing import Any

from nats.js.kv import KV_DEL, KV_PURGE

from app.gateway.kv import GatewayNats, KvError
from app.gateway.request_index import RequestIndex

log = logging.getLogger(__name__)

CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class RequestStore:
    """Pending requests and client-id ownership."""

    def __init__(self, nats: GatewayNats, ttl_secs: float = 1800.0) -> None:
        self.nats = nats
        self.index = RequestIndex(ttl_secs)
        self._closing = False

    async def client_owner(self, client_id: str) -> str | None:
        """The session hash that owns a client id, or None when unbound."""
        raw = await self.nats.get("requests", f"client.{client_id}")
        if raw is None:
            return None
        try:
            return str(json.loads(raw)["session_hash"])
        except (ValueError, KeyError, TypeError):
            return None

    async def bind_client(self, client_id: str, session_hash: str) -> None:
        """Bind (or re-bind on connect) a client id to its session."""
        value = {"session_hash": session_hash, "bound_at": int(time.time())}
        await self.nats.put("requests", f"client.{client_id}", json.dumps(value).encode())

    async def add(self, request_id: str, entry: dict[str, Any]) -> None:
        """Write req.<id> and its exec./creq. index keys."""
        await self.nats.put("requests", f"req.{request_id}", json.dumps(entry).encode())
        self.index.put(request_id, entry)  # write-through: this replica routes at once, before the watch
        await self.nats.put("requests", f"exec.{entry['execution_id']}.{request_id}", request_id.encode())
        await self.nats.put("requests", f"creq.{entry['client_id']}.{request_id}", request_id.encode())

    async def get(self, request_id: str) -> dict[str, Any] | None:
        """The pending request or None (absent or K/V error)."""
        try:
            raw = await self.nats.get("requests", f"req.{request_id}")
        except KvError:
            return None
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    async def delete(self, request_id: str, entry: dict[str, Any]) -> None:
        """Remove a request and its index keys."""
        self.index.remove(request_id)
        for key in (
            f"req.{request_id}",
            f"exec.{entry.get('execution_id')}.{request_id}",
            f"creq.{entry.get('client_id')}.{request_id}",
        ):
            try:
                await self.nats.delete("requests", key)
            except KvError:
                pass

    async def by_execution(self, execution_id: str) -> list[dict[str, Any]]:
        """Pending requests of one execution (filtered listing)."""
        return await self._listed(f"exec.{execution_id}.>")

    async def clients_of(self, execution_id: str) -> list[str]:
        """Client ids owning pending requests of one execution: from memory once the watch caught up."""
        if self.index.ready and self.nats.ready:
            return self.index.clients(execution_id)
        return [str(e.get("client_id")) for e in await self.by_execution(execution_id)]

    async def watch_index(self) -> None:
        """Keep the in-memory index in step with `req.>` across every replica; re-watch after failures."""
        delay = 0.5
        while not self._closing:
            kv = self.nats.requests
            if kv is None or not self.nats.ready:
                self.index.ready = False
                await asyncio.sleep(0.2)
                continue
            watcher = None
            try:
                watcher = await asyncio.wait_for(kv.watch("req.>"), 5.0)
                self.index.reset()
                delay = 0.5
                while not self._closing and self.nats.ready:
                    try:
                        entry = await watcher.updates(timeout=1.0)
                    except TimeoutError:
                        continue
                    if entry is None:
                        self.index.ready = True  # the replay of existing keys is complete
                        continue
                    self.index.apply(entry.key, entry.value, entry.operation in (KV_DEL, KV_PURGE))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("request index watch failed; re-watching", extra={"error": str(exc)[:200]})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                self.index.ready = False
                if watcher is not None:
                    with contextlib.suppress(Exception):
                        await watcher.stop()

    def stop(self) -> None:
        """End the watch loop."""
        self._closing = True

    async def by_client(self, client_id: str) -> list[dict[str, Any]]:
        """Pending requests of one client id."""
        return await self._listed(f"creq.{client_id}.>")

    async def _listed(self, subject_filter: str) -> list[dict[str, Any]]:
        try:
            keys = await self.nats.keys("requests", subject_filter)
        except KvError:
            return []
        # Older NATS servers may ignore the filter: never route another client's keys.
        prefix = subject_filter.removesuffix(">")
        out = []
        for key in keys:
            if not key.startswith(prefix):
                continue
            rid = key.rsplit(".", 1)[-1]
            entry = await self.get(rid)
            if entry is not None:
                out.append({**entry, "request_id": rid})
        return out
