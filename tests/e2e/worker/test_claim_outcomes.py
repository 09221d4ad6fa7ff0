"""Claim outcome → NATS action (server-contract §12.7), observed on the real durable consumer."""

from __future__ import annotations

import json

import nats
import pytest

from app.loops import SERVER_LOOPS
from tests.support.playbooks import LINEAR, register, wait_terminal
from tests.support.real_worker import running_worker, worker_settings
from tests.support.server import make_settings, running_api
from tests.support.wait import eventually

pytestmark = pytest.mark.e2e


async def test_404_is_nacked_until_the_fifth_delivery_and_409_is_acked(db_dsn: str, nats_url: str) -> None:
    settings = make_settings(db_dsn, nats_url)
    async with running_api(settings, SERVER_LOOPS) as api:
        ws = worker_settings(db_dsn, nats_url, api.url)
        durable = ws.worker.durable_name
        async with running_worker(ws):
            await register(api, LINEAR)
            _, started = await api.post("/api/execute", json={"path": "tests/linear"})
            await wait_terminal(api, started["execution_id"])
            _, issued = await api.get(
                f"/api/executions/{started['execution_id']}/events",
                params={"event_type": "command.issued", "page_size": "50"},
            )
            terminal_event_id = int(issued["events"][0]["event_id"])
            nc = await nats.connect(nats_url)
            try:
                js = nc.jetstream()
                before = await js.consumer_info("NOETL_COMMANDS", durable)
                note = {
                    "execution_id": int(started["execution_id"]),
                    "event_id": terminal_event_id,
                    "command_id": 1,
                    "step": "start",
                    "server_url": api.url,
                    "execution_pool": "shared",
                }
                await js.publish("noetl.commands.shared.1", json.dumps(note).encode())

                async def settled() -> bool:
                    info = await js.consumer_info("NOETL_COMMANDS", durable)
                    return bool(
                        info.delivered.consumer_seq == before.delivered.consumer_seq + 1
                        and info.num_ack_pending == 0
                    )

                await eventually(settled, timeout=10, what="409 acked on first delivery")
                missing = {**note, "event_id": 99_999_999_999}
                await js.publish("noetl.commands.shared.2", json.dumps(missing).encode())

                async def gave_up() -> bool:
                    info = await js.consumer_info("NOETL_COMMANDS", durable)
                    delivered = info.delivered.consumer_seq - before.delivered.consumer_seq - 1
                    return bool(delivered == 5 and info.num_ack_pending == 0)

                await eventually(gave_up, timeout=20, interval=0.2, what="404 nacked 4 times then acked")
            finally:
                await nc.close()
