"""JetStream plumbing: connection with endless reconnect, the two streams, publish with Nats-Msg-Id."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from app.config import NatsSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    max_age: float
    duplicate_window: float


def command_stream(s: NatsSettings) -> StreamSpec:
    """NOETL_COMMANDS over noetl.commands and noetl.commands.> (server-contract §12.2)."""
    return StreamSpec(
        s.stream, (s.subject, f"{s.subject}.>"), s.command_max_age_seconds, s.duplicate_window_seconds
    )


def event_stream(s: NatsSettings) -> StreamSpec:
    """NOETL_EVENTS over noetl.events.> (server-contract §14.5)."""
    return StreamSpec(s.event_stream, (f"{s.event_subject_prefix}.>",), s.event_max_age_seconds, 120.0)


async def ensure_stream(js: JetStreamContext, spec: StreamSpec) -> str | None:
    """Create or widen a file-storage stream; return a problem description or None."""
    try:
        info = await js.stream_info(spec.name)
    except NotFoundError:
        await js.add_stream(
            StreamConfig(
                name=spec.name,
                subjects=list(spec.subjects),
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                max_age=spec.max_age,
                duplicate_window=spec.duplicate_window,
            )
        )
        log.info("stream created", extra={"stream": spec.name, "subjects": list(spec.subjects)})
        return None
    cfg = info.config
    if cfg.storage == StorageType.MEMORY:
        return (
            f"stream {spec.name} uses memory storage; delete it and let the server re-create it "
            "with file storage"
        )
    subjects = list(cfg.subjects or [])
    missing = [s for s in spec.subjects if s not in subjects]
    if missing or cfg.max_age != spec.max_age or cfg.duplicate_window != spec.duplicate_window:
        cfg.subjects = subjects + missing
        cfg.max_age = spec.max_age
        cfg.duplicate_window = spec.duplicate_window
        await js.update_stream(cfg)
        log.info("stream updated", extra={"stream": spec.name, "subjects": cfg.subjects})
    return None


class Bus:
    """One NATS connection per process; the server keeps working (degraded) while NATS is away."""

    def __init__(self, settings: NatsSettings, *, ensure: bool = True, name: str = "noetl") -> None:
        self.settings = settings
        self.ensure = ensure
        self.name = name
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self.stream_problem: str | None = None
        self._streams_ok = False
        self._checked_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def start(self, wait: float = 5.0) -> None:
        """Connect in the background; wait up to `wait` seconds for the first connection."""
        self._task = asyncio.create_task(self._connect_loop(), name="nats-connect")
        deadline = time.monotonic() + wait
        while not self.connected and time.monotonic() < deadline and not self._task.done():
            await asyncio.sleep(0.05)

    async def _connect_loop(self) -> None:
        delay = 0.5
        while not self._closing:
            try:
                self.nc = await nats.connect(
                    **self.settings.connect_options(),  # type: ignore[arg-type]
                    name=self.name,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    connect_timeout=2,
                    ping_interval=5,
                    max_outstanding_pings=2,
                    reconnected_cb=self._on_reconnect,
                    disconnected_cb=self._on_disconnect,
                    error_cb=self._on_error,
                )
                self.js = self.nc.jetstream(timeout=5)
                log.info("nats connected", extra={"url": self.settings.safe_url})
                await self._ensure_streams()
                return
            except Exception as exc:  # initial connect failures: keep retrying, degraded meanwhile
                log.warning("nats connect failed; retrying", extra={"error": str(exc)[:200]})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _ensure_streams(self) -> None:
        if not self.ensure or self.js is None:
            self._streams_ok = True
            return
        problems = []
        for spec in (command_stream(self.settings), event_stream(self.settings)):
            try:
                problem = await ensure_stream(self.js, spec)
            except Exception as exc:
                problem = f"stream {spec.name}: {exc}"
            if problem:
                log.error("stream not usable", extra={"stream": spec.name, "problem": problem})
                problems.append(problem)
        self.stream_problem = "; ".join(problems) or None
        self._streams_ok = not problems
        self._checked_at = time.monotonic()

    async def _on_reconnect(self) -> None:
        log.info("nats reconnected")
        with contextlib.suppress(Exception):
            await self._ensure_streams()

    async def _on_disconnect(self) -> None:
        if not self._closing:
            log.warning("nats disconnected")

    async def _on_error(self, exc: Exception) -> None:
        log.debug("nats error", extra={"error": str(exc)[:200]})

    async def check(self) -> str | None:
        """None when NATS is connected and both streams are usable, else the reason."""
        if not self.connected:
            return "disconnected"
        if not self._streams_ok or time.monotonic() - self._checked_at > 10:
            try:
                await asyncio.wait_for(self._ensure_streams(), timeout=2)
            except Exception as exc:
                return f"streams unavailable: {exc}"
        return self.stream_problem

    async def publish(self, subject: str, payload: bytes, msg_id: str, timeout: float = 5.0) -> int:
        """JetStream publish waiting for the PubAck; returns the stream sequence."""
        if self.js is None or not self.connected:
            raise ConnectionError("NATS is not connected")
        ack = await self.js.publish(subject, payload, timeout=timeout, headers={"Nats-Msg-Id": msg_id})
        return int(ack.seq)

    async def close(self) -> None:
        """Stop reconnecting and drain the connection."""
        self._closing = True
        if self._task and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.drain()
            with contextlib.suppress(Exception):
                await self.nc.close()
