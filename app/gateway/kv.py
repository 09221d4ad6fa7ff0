"""The gateway's NATS link (gateway.md §7): K/V buckets, core subscriptions, degraded mode without NATS."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import KeyValueConfig
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from app.config.gateway import GatewaySettings
from app.config.nats import NatsSettings

log = logging.getLogger(__name__)

OP_TIMEOUT = 2.0  # every K/V and NATS call (§7.3)

Handler = Callable[[Msg], Awaitable[None]]


class KvError(Exception):
    """A K/V call failed or NATS is not connected (callers degrade)."""


class GatewayNats:
    """Connection plus the sessions/requests buckets; reconnects in the background."""

    def __init__(self, nats_settings: NatsSettings, gw: GatewaySettings) -> None:
        self.ns = nats_settings
        self.gw = gw
        self.nc: Client | None = None
        self.sessions: KeyValue | None = None
        self.requests: KeyValue | None = None
        self._subs: list[tuple[str, Handler]] = []
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.listings = 0  # filtered K/V listings made (tests and benches prove the index is used)

    @property
    def ready(self) -> bool:
        """Connected with both buckets open."""
        return (
            self.nc is not None
            and self.nc.is_connected
            and self.sessions is not None
            and self.requests is not None
        )

    def subscribe(self, subject: str, handler: Handler) -> None:
        """Register a core subscription (made on every (re)connect)."""
        self._subs.append((subject, handler))

    async def start(self, wait: float = 3.0) -> None:
        """Connect in the background; wait up to `wait` seconds for readiness."""
        if not self.ns.enabled:
            log.warning(
                "NATS_URL is not set: gateway runs degraded (no session cache, no SSE lifecycle frames)"
            )
            return
        self._task = asyncio.create_task(self._connect_loop(), name="gateway-nats")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while not self.ready and loop.time() < deadline and not self._task.done():
            await asyncio.sleep(0.05)

    async def _connect_loop(self) -> None:
        delay = 0.5
        while not self._closing:
            try:
                nc = await nats.connect(
                    **self.ns.connect_options(),  # type: ignore[arg-type]
                    name="noetl-gateway",
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    connect_timeout=2,
                )
                self.nc = nc
                js = nc.jetstream(timeout=OP_TIMEOUT)
                self.sessions = await _bucket(
                    js, self.gw.session_bucket, self.gw.session_cache_ttl_secs, 10240
                )
                self.requests = await _bucket(js, self.gw.request_bucket, self.gw.request_ttl_secs, 4096)
                for subject, handler in self._subs:
                    await nc.subscribe(subject, cb=handler)
                log.info("gateway nats ready", extra={"url": self.ns.safe_url})
                return
            except Exception as exc:
                log.warning("gateway nats connect failed; retrying", extra={"error": str(exc)[:200]})
                if self.nc is not None:
                    with contextlib.suppress(Exception):
                        await self.nc.close()
                self.nc = self.sessions = self.requests = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def close(self) -> None:
        """Stop reconnecting and drain."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.close(), OP_TIMEOUT)

    def _kv(self, which: str) -> KeyValue:
        kv = self.sessions if which == "sessions" else self.requests
        if kv is None or self.nc is None or not self.nc.is_connected:
            raise KvError("nats unavailable")
        return kv

    async def get(self, which: str, key: str) -> bytes | None:
        """The value or None when absent; KvError when NATS fails."""
        kv = self._kv(which)
        try:
            entry = await asyncio.wait_for(kv.get(key), OP_TIMEOUT)
        except KeyNotFoundError:
            return None
        except Exception as exc:
            raise KvError(str(exc)[:200]) from None
        return entry.value

    async def put(self, which: str, key: str, value: bytes) -> None:
        """Write one key; KvError on failure."""
        kv = self._kv(which)
        try:
            await asyncio.wait_for(kv.put(key, value), OP_TIMEOUT)
        except Exception as exc:
            raise KvError(str(exc)[:200]) from None

    async def delete(self, which: str, key: str) -> None:
        """Delete one key; KvError on failure."""
        kv = self._kv(which)
        try:
            await asyncio.wait_for(kv.delete(key), OP_TIMEOUT)
        except Exception as exc:
            raise KvError(str(exc)[:200]) from None

    async def keys(self, which: str, subject_filter: str) -> list[str]:
        """Keys matching a subject filter (never a full scan); [] when none."""
        kv = self._kv(which)
        self.listings += 1
        try:
            return await asyncio.wait_for(_watched_keys(kv, subject_filter), OP_TIMEOUT)
        except Exception as exc:
            raise KvError(str(exc)[:200]) from None

    async def request(self, subject: str, payload: bytes) -> bytes | None:
        """NATS request/reply with the 2 s timeout; None when nobody answered."""
        if self.nc is None or not self.nc.is_connected:
            return None
        try:
            msg = await self.nc.request(subject, payload, timeout=OP_TIMEOUT)
        except Exception:
            return None
        return bytes(msg.data)


async def _bucket(js: Any, name: str, ttl: int, max_value: int) -> KeyValue:
    try:
        return await js.key_value(name)  # type: ignore[no-any-return]
    except Exception:
        config = KeyValueConfig(bucket=name, ttl=float(ttl), history=1, max_value_size=max_value)
        return await js.create_key_value(config=config)  # type: ignore[no-any-return]


async def _watched_keys(kv: KeyValue, subject_filter: str) -> list[str]:
    # nats-py's KeyValue.keys(filters=) matches filters as substrings client-side, so a wildcard
    # filter like `exec.<id>.>` never matches; a watch on the pattern filters on the server instead.
    watcher = await kv.watch(subject_filter, ignore_deletes=True, meta_only=True)
    keys: list[str] = []
    try:
        async for entry in watcher:
            if entry is None:
                break
            if entry.operation is None:
                keys.append(entry.key)
    finally:
        await watcher.stop()
    return keys
