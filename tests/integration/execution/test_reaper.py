"""The reaper re-publishes stranded commands with fresh message ids (server-contract §12.8)."""

from __future__ import annotations

import json

import nats
import pytest

from app.loops import relay_loop
from app.services import reaper
from tests.support.playbooks import LINEAR, register
from tests.support.server import make_settings, running_api
from tests.support.wait import eventually

pytestmark = pytest.mark.integration


async def test_pending_and_lost_claims_are_republished(db_dsn: str, nats_url: str) -> None:
    settings = make_settings(db_dsn, nats_url, NOETL_COMMAND_REAPER_PENDING_RETRY_SECONDS="1")
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    async with running_api(settings, [("relay", relay_loop)]) as api:
        await register(api, LINEAR)
        _, started = await api.post("/api/execute", json={"path": "tests/linear"})
        eid = int(started["execution_id"])
        sub = await js.pull_subscribe(f"noetl.commands.shared.{eid}", durable=None, stream="NOETL_COMMANDS")

        async def fetch() -> list:  # type: ignore[type-arg]
            try:
                return await sub.fetch(1, timeout=0.5)
            except Exception:
                return []

        first = await eventually(fetch, timeout=10, what="first publish")
        await first[0].ack()
        await eventually(lambda: _published(api, eid), timeout=5, what="outbox marked")
        assert await reaper.run_once(api.deps) == 0  # not old enough yet
        await api.deps.pool.execute(
            "UPDATE command SET updated_at = now() - interval '5 minutes' WHERE execution_id = $1", eid
        )
        assert await reaper.run_once(api.deps) == 1
        again = await eventually(fetch, timeout=10, what="re-publish")
        note = json.loads(again[0].data)
        assert again[0].headers["Nats-Msg-Id"] == f"{note['event_id']}:r1"
        assert await reaper.run_once(api.deps) == 0  # backed off (60 s before the next one)
        # a claim whose worker vanished is re-published too
        await api.deps.pool.execute(
            "UPDATE command SET meta = meta - 'next_republish_at' WHERE execution_id = $1", eid
        )
        await api.post(f"/api/commands/{note['event_id']}/claim", json={"worker_id": "ghost"})
        await api.deps.pool.execute(
            "UPDATE command SET claimed_at = now() - interval '5 minutes', "
            "updated_at = now() - interval '5 minutes' WHERE execution_id = $1",
            eid,
        )
        assert await reaper.run_once(api.deps) == 1
        third = await eventually(fetch, timeout=10, what="re-publish of the lost claim")
        assert third[0].headers["Nats-Msg-Id"] == f"{note['event_id']}:r2"
        # terminal executions are skipped
        await api.post(f"/api/executions/{eid}/cancel", json={})
        await api.deps.pool.execute(
            "UPDATE command SET meta = meta - 'next_republish_at' WHERE execution_id = $1", eid
        )
        assert await reaper.run_once(api.deps) == 0
    await nc.close()


async def _published(api, eid: int) -> bool:  # type: ignore[no-untyped-def]
    return bool(
        await api.deps.pool.fetchval(
            "SELECT bool_and(status = 'PUBLISHED') FROM outbox WHERE execution_id = $1 AND kind = 'command'",
            eid,
        )
    )
