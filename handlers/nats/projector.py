"""Read-model projectors: one durable JetStream consumer per projection on the event mirror (§14.5)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub

from app.bootstrap import Deps
from handlers.nats.instrument import run_instrumented
from projections import runner
from projections.base import Projection
from projections.registry import READ_MODELS

log = logging.getLogger(__name__)


def consumer_name(projection: Projection) -> str:
    return f"projector_{projection.name}"


def _stream_seq(msg: NatsMessage) -> int:
    try:
        return int(msg.raw_message.metadata.sequence.stream)
    except Exception:  # a message without JetStream metadata cannot advance a checkpoint
        return 0


def _subscribe(broker: NatsBroker, deps: Deps, projection: Projection) -> None:
    n = deps.settings.nats
    stream = JStream(name=n.event_stream, subjects=[f"{n.event_subject_prefix}.>"], declare=False)
    name = consumer_name(projection)

    @broker.subscriber(
        f"{n.event_subject_prefix}.>",
        stream=stream,
        durable=f"noetl-projector-{projection.name}",
        pull_sub=PullSub(batch_size=100, timeout=1.0),
        ack_policy=AckPolicy.MANUAL,
    )
    async def on_mirrored_event(body: Any, msg: NatsMessage) -> None:
        async def work() -> int:
            data = json.loads(body) if isinstance(body, bytes | str) else body
            events = data if isinstance(data, list) else [data]
            async with deps.pool.acquire() as conn, conn.transaction():
                return await runner.apply(conn, projection, events, _stream_seq(msg))

        await run_instrumented(deps, name, msg, work)


def register(broker: NatsBroker, deps: Deps) -> None:
    """Subscribe every read model (NOETL_PROJECTIONS_ENABLED=false turns them off)."""
    if not deps.settings.ops.projections_enabled:
        return
    for projection in READ_MODELS.values():
        _subscribe(broker, deps, projection)


async def lag_loop(deps: Deps) -> None:
    """noetl_projection_lag_events{projection} = stream head minus the projection's checkpoint."""
    if not deps.settings.ops.projections_enabled:
        return
    interval = deps.settings.ops.projection_lag_interval_seconds
    while True:
        try:
            await export_lag(deps)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # metrics must never take the consumers down
            log.debug("projection lag failed", extra={"error": str(exc)[:200]})
        await asyncio.sleep(interval)


async def export_lag(deps: Deps) -> dict[str, int]:
    """Compute and export each projection's lag once; returns it."""
    bus = deps.bus
    if bus is None or bus.js is None:
        return {}
    head = int((await bus.js.stream_info(deps.settings.nats.event_stream)).state.last_seq)
    out = {}
    for projection in READ_MODELS.values():
        lag = max(0, head - await runner.checkpoint(deps.pool, projection.name))
        deps.metrics.projection_lag.labels(projection.name).set(lag)
        deps.metrics.consumer_lag.labels(consumer_name(projection)).set(lag)
        out[projection.name] = lag
    return out
