"""Event ingest consumer: envelopes published to NOETL_INGEST (noetl.ingest.events.>) are projected
into noetl.event exactly like POST /api/internal/events/project."""

from __future__ import annotations

import json
from typing import Any

from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub

from app.bootstrap import Deps
from app.services import project
from handlers.nats.instrument import run_instrumented

CONSUMER = "event_ingest"


def register(broker: NatsBroker, deps: Deps) -> None:
    """Subscribe the ingest consumer (durable `noetl-ingest`, shared by every consumers replica)."""
    n = deps.settings.nats
    stream = JStream(name=n.ingest_stream, subjects=[f"{n.ingest_subject}.>"], declare=False)

    @broker.subscriber(
        f"{n.ingest_subject}.>",
        stream=stream,
        durable="noetl-ingest",
        pull_sub=PullSub(batch_size=50, timeout=1.0),
        ack_policy=AckPolicy.MANUAL,
    )
    async def on_ingested_event(body: Any, msg: NatsMessage) -> None:
        async def work() -> Any:
            data = json.loads(body) if isinstance(body, bytes | str) else body
            events = (
                data["events"]
                if isinstance(data, dict) and "events" in data
                else (data if isinstance(data, list) else [data])
            )
            return await project.project(deps, events)

        await run_instrumented(deps, CONSUMER, msg, work)
