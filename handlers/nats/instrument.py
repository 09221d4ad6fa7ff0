"""Per-consumer metrics (processed, failed, duration) and the error → ack/nak/reject mapping."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from faststream.nats import NatsMessage

from app.bootstrap import Deps
from handlers.errors import NatsAction, nats_action

log = logging.getLogger(__name__)


async def settle(msg: NatsMessage, action: NatsAction, delay: float = 1.0) -> None:
    """Apply the decided acknowledgement to a JetStream message."""
    if action is NatsAction.ACK:
        await msg.ack()
    elif action is NatsAction.NAK:
        await msg.nack(delay=delay)
    else:
        await msg.reject()


async def run_instrumented(
    deps: Deps, consumer: str, msg: NatsMessage | None, work: Callable[[], Awaitable[Any]]
) -> Any:
    """Run one message's work; ack on success, map errors through handlers/errors.py."""
    start = time.perf_counter()
    try:
        result = await work()
    except Exception as exc:
        deps.metrics.consumer_failed.labels(consumer).inc()
        action = nats_action(exc)
        log.warning(
            "consumer failed", extra={"consumer": consumer, "error": str(exc)[:200], "action": action.value}
        )
        if msg is not None:
            await settle(msg, action)
        return None
    finally:
        deps.metrics.consumer_duration.labels(consumer).observe(time.perf_counter() - start)
    deps.metrics.consumer_processed.labels(consumer).inc()
    if msg is not None:
        await msg.ack()
    return result
