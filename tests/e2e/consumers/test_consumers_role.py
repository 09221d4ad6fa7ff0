"""The `consumers` role: the relay in its own process-like unit, and the event ingest consumer."""

from __future__ import annotations

import asyncio
import json

import nats
import pytest

from handlers.roles.consumers import run_consumers
from tests.support.playbooks import LINEAR, register, wait_terminal
from tests.support.server import Api, make_settings, running_api
from tests.support.test_worker import TestWorker
from tests.support.wait import eventually

pytestmark = pytest.mark.e2e


async def test_relay_and_ingest_run_in_the_consumers_role(db_dsn: str, nats_url: str) -> None:
    settings = make_settings(db_dsn, nats_url)
    stop = asyncio.Event()
    # The API runs without any relay; the consumers role publishes its outbox.
    async with running_api(settings) as api, TestWorker(nats_url) as worker:
        task = asyncio.create_task(run_consumers(settings, stop=stop))
        try:
            await register(api, LINEAR)
            _, started = await api.post("/api/execute", json={"path": "tests/linear"})
            final = await wait_terminal(api, started["execution_id"], timeout=30)
            assert final["status"] == "COMPLETED" and len(worker.claims) == 3

            # A publish-only producer: its command.completed arrives through NOETL_INGEST only.
            worker.hold.clear()
            _, second = await api.post("/api/execute", json={"path": "tests/linear"})
            eid = int(second["execution_id"])
            cid, ev = await _first_command(api, eid)
            nc = await nats.connect(nats_url)
            js = nc.jetstream()
            envelope = {
                "event_id": api.deps.ids.next_id(),
                "execution_id": eid,
                "event_type": "command.completed",
                "node_name": "start",
                "status": "COMPLETED",
                "command_id": cid,
                "meta": {"command_id": cid},
                "result": {"status": "COMPLETED", "context": {"result": {"double": 2}}},
            }
            await js.publish("noetl.ingest.events.test", json.dumps(envelope).encode())
            await js.publish("noetl.ingest.events.test", json.dumps(envelope).encode())  # replayed: no-op
            await nc.close()

            async def next_issued() -> int:
                return int(
                    await api.deps.pool.fetchval(
                        "SELECT count(*) FROM command WHERE execution_id = $1 AND step_name = 'add'", eid
                    )
                )

            assert await eventually(next_issued, timeout=20, what="ingested completion orchestrated") == 1
            assert (
                await api.deps.pool.fetchval(
                    "SELECT count(*) FROM event WHERE execution_id = $1 AND event_type = 'command.completed'",
                    eid,
                )
                == 1
            )
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)


async def _first_command(api: Api, eid: int) -> tuple[int, int]:
    row = await api.deps.pool.fetchrow(
        "SELECT command_id, event_id FROM command WHERE execution_id = $1", eid
    )
    return int(row["command_id"]), int(row["event_id"])
