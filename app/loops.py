"""The server's background loops: outbox relay, runtime sweeper, command reaper (the last two lease-guarded)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable

from app.bootstrap import Deps
from app.outbox import Relay
from app.services import reaper, runtime

log = logging.getLogger(__name__)


def instance_name(deps: Deps) -> str:
    """This process's identity for singleton leases."""
    host = deps.settings.server.hostname or socket.gethostname()
    return f"{host}:{os.getpid()}"


async def relay_loop(deps: Deps) -> None:
    """In-process relay (NOETL_OUTBOX_RELAY_ENABLED); needs NATS."""
    bus = deps.bus
    if bus is None or not deps.settings.server.outbox_relay_enabled:
        return

    async def publish(subject: str, data: bytes, msg_id: str) -> None:
        await bus.publish(subject, data, msg_id)

    relay = Relay(
        deps.pool,
        publish,
        deps.metrics,
        batch_size=deps.settings.server.outbox_batch_size,
        lease_seconds=deps.settings.server.outbox_inflight_lease_seconds,
        kinds=deps.settings.server.outbox_relay_kinds,
    )
    await relay.run_forever(deps.outbox_wakeup)


async def _singleton(deps: Deps, task: str, interval: float, body: Callable[[], Awaitable[None]]) -> None:
    s = deps.settings.server
    me = instance_name(deps)
    while True:
        try:
            if await runtime.acquire_lease(
                deps.pool, deps.ids, s.server_name, task, me, s.control_lease_seconds, s.hostname
            ):
                await body()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("background task failed", extra={"task": task, "error": str(exc)[:200]})
        await asyncio.sleep(interval)


async def sweeper_loop(deps: Deps) -> None:
    """Mark stale runtime rows offline every NOETL_RUNTIME_SWEEP_INTERVAL seconds."""
    s = deps.settings.server

    async def body() -> None:
        n = await runtime.sweep(deps.pool, s.runtime_offline_seconds)
        if n:
            log.info("runtime rows marked offline", extra={"count": n})

    await _singleton(deps, "runtime_sweeper", s.runtime_sweep_interval, body)


async def reaper_loop(deps: Deps) -> None:
    """Re-publish stranded commands (NOETL_COMMAND_REAPER_*)."""
    s = deps.settings.server
    if not s.reaper_enabled:
        return

    async def body() -> None:
        n = await reaper.run_once(deps)
        if n:
            deps.outbox_wakeup.set()

    await _singleton(deps, "command_reaper", s.reaper_interval_seconds, body)


SERVER_LOOPS: list[tuple[str, Callable[[Deps], Awaitable[None]]]] = [
    ("outbox-relay", relay_loop),
    ("runtime-sweeper", sweeper_loop),
    ("command-reaper", reaper_loop),
]
