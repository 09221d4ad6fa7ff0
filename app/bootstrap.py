"""The composition root: builds pool, bus, id generator and metrics into one Deps object."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg

from app.bus import Bus
from app.config import Settings
from app.db.pool import create_pool
from app.ids import SnowflakeGenerator, node_id_from_name
from app.metrics import Metrics

if TYPE_CHECKING:
    from app.services.wallet import WalletRuntime

log = logging.getLogger(__name__)

OUTBOX_WAKE_SUBJECT = "noetl.internal.outbox.wake"


def machine_id(settings: Settings) -> tuple[int, str]:
    """The snowflake node id and where it came from."""
    if settings.server.machine_id is not None:
        return settings.server.machine_id, "NOETL_SERVER_MACHINE_ID"
    host = settings.server.hostname
    if host:
        return node_id_from_name(host), "derived from HOSTNAME (FNV-1a)"
    import socket

    return node_id_from_name(socket.gethostname()), "derived from the system hostname (FNV-1a)"


@dataclass
class Deps:
    """Everything a service function needs; built once per process."""

    settings: Settings
    pool: asyncpg.Pool
    ids: SnowflakeGenerator
    metrics: Metrics
    bus: Bus | None
    started_at: float = field(default_factory=time.monotonic)
    outbox_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    extras: dict[str, Any] = field(default_factory=dict)
    wallet: WalletRuntime | None = None

    @property
    def schema(self) -> str:
        return self.settings.server.schema_name

    def signal_outbox(self) -> None:
        """Wake the relays after a commit: this process's at once, other processes' over NATS."""
        self.outbox_wakeup.set()
        bus = self.bus
        if bus is not None and bus.nc is not None and bus.connected:
            # Fire-and-forget core publish: a lost wake-up only costs the relay's poll interval.
            task = asyncio.ensure_future(bus.nc.publish(OUTBOX_WAKE_SUBJECT, b""))
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)


async def open_pool(settings: Settings, wait: float | None = None) -> asyncpg.Pool:
    """Open the pool, retrying until the database answers or `wait` seconds pass."""
    deadline = time.monotonic() + (settings.db.acquire_timeout if wait is None else wait)
    delay = 0.25
    while True:
        try:
            return await create_pool(
                settings.db, settings.server.schema_name, application_name=settings.server.server_name
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning("database not reachable yet; retrying", extra={"error": str(exc)[:200]})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def build_deps(settings: Settings, stack: AsyncExitStack, *, with_bus: bool = True) -> Deps:
    """Open every resource once; the exit stack closes them in reverse order."""
    from app.services.wallet import build_wallet

    node, source = machine_id(settings)
    log.info("snowflake machine id", extra={"machine_id": node, "source": source})
    ids = SnowflakeGenerator(node)
    metrics = Metrics()
    # Before anything is opened: a malformed NOETL_ENCRYPTION_KEY / KMS setting refuses to start.
    wallet = build_wallet(settings, metrics, ids)
    pool = await open_pool(settings)
    stack.push_async_callback(pool.close)
    wallet.attach(pool)
    # Closed before the pool: pending audit writes and background refreshes still need it.
    stack.push_async_callback(wallet.close)
    bus: Bus | None = None
    if with_bus and settings.nats.enabled:
        bus = Bus(settings.nats, name=settings.server.server_name)
        await bus.start()
        stack.push_async_callback(bus.close)
    elif with_bus:
        log.warning("NATS_URL is not set: running degraded (no command notifications, no event mirror)")
    deps = Deps(settings=settings, pool=pool, ids=ids, metrics=metrics, bus=bus, wallet=wallet)
    deps.extras["machine_id_source"] = source
    return deps
