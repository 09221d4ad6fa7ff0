"""The outbox relay as a consumer: woken by the API's NATS wake-up after each commit, polling as a fallback."""

from __future__ import annotations

import asyncio
from typing import Any

from faststream.nats import NatsBroker

from app.bootstrap import OUTBOX_WAKE_SUBJECT, Deps
from app.outbox import Relay


def register(broker: NatsBroker, deps: Deps) -> None:
    """Core-NATS wake-up subscriber; any replica may wake (claims use SKIP LOCKED)."""

    @broker.subscriber(OUTBOX_WAKE_SUBJECT)
    async def on_outbox_wake(body: Any) -> None:
        deps.outbox_wakeup.set()


async def run_relay(deps: Deps) -> None:
    """Publish outbox rows through the process's JetStream connection until cancelled."""
    bus = deps.bus
    if bus is None:
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


async def lag_loop(deps: Deps, interval: float = 5.0) -> None:
    """Export the outbox backlog as the relay's lag."""
    from app.outbox import pending_count

    while True:
        try:
            s = deps.settings.server
            n = await pending_count(deps.pool, s.outbox_inflight_lease_seconds, s.outbox_pending_count_cap)
            deps.metrics.outbox_pending.set(n)
            deps.metrics.consumer_lag.labels("outbox_relay").set(n)
        except Exception:  # metrics must never take the relay down
            pass
        await asyncio.sleep(interval)
