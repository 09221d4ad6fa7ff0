"""POST /api/internal/cleanup/purge and the consumers role's scheduled purge, on real executions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.loops import SERVER_LOOPS
from handlers.roles.consumers import run_consumers
from tests.e2e.ops.conftest import MakeOps
from tests.support.playbooks import LINEAR, register, wait_terminal
from tests.support.server import Api, running_api
from tests.support.test_worker import TestWorker
from tests.support.wait import eventually

pytestmark = pytest.mark.e2e

TOKEN = "c1ea" * 16
AUTH = {"Authorization": f"Bearer {TOKEN}"}
OLD = "now() - interval '30 days'"


async def counts(api: Api, eid: int) -> dict[str, int]:
    """Rows of one execution per table, plus the runtime rows by name."""
    q = api.deps.pool.fetchval
    return {
        "events": await q("SELECT count(*) FROM event WHERE execution_id = $1", eid),
        "commands": await q("SELECT count(*) FROM command WHERE execution_id = $1", eid),
        "outbox": await q("SELECT count(*) FROM outbox WHERE execution_id = $1", eid),
    }


async def add_runtime(api: Api, name: str, status: str, heartbeat_sql: str) -> None:
    await api.deps.pool.execute(
        f"INSERT INTO runtime (runtime_id, name, kind, status, heartbeat) "
        f"VALUES ($1, $2, 'worker_pool', $3, {heartbeat_sql})",
        api.deps.ids.next_id(),
        name,
        status,
    )


async def runtimes(api: Api) -> set[str]:
    return {r["name"] for r in await api.deps.pool.fetch("SELECT name FROM runtime WHERE name LIKE 'w-%'")}


async def test_purge_removes_old_terminal_rows_and_never_a_running_execution(
    db_dsn: str, nats_url: str, ops_settings: MakeOps
) -> None:
    settings = ops_settings(db_dsn, nats_url, NOETL_INTERNAL_API_TOKEN=TOKEN, NOETL_CLEANUP_BATCH_SIZE="3")
    async with running_api(settings, SERVER_LOOPS) as api, TestWorker(nats_url) as worker:
        await register(api, LINEAR)
        done = []
        for _ in range(2):
            _, res = await api.post("/api/execute", json={"path": "tests/linear"})
            assert (await wait_terminal(api, res["execution_id"], timeout=30))["status"] == "COMPLETED"
            done.append(int(res["execution_id"]))
        worker.hold.clear()  # the next execution stays RUNNING: its first command is never run
        _, res = await api.post("/api/execute", json={"path": "tests/linear"})
        running = int(res["execution_id"])

        async def published() -> bool:
            return not await api.deps.pool.fetchval("SELECT count(*) FROM outbox WHERE status <> 'PUBLISHED'")

        await eventually(published, timeout=20, what="outbox published")
        # Age everything, the running execution included: only terminal status may protect nothing else.
        pool = api.deps.pool
        await pool.execute(f"UPDATE command SET completed_at = {OLD}")
        await pool.execute(f"UPDATE execution SET end_time = {OLD}")
        await pool.execute(f"UPDATE outbox SET published_at = {OLD}")
        await add_runtime(api, "w-dead", "offline", OLD)
        await add_runtime(api, "w-fresh-offline", "offline", "now()")
        before = {eid: await counts(api, eid) for eid in [*done, running]}
        assert all(c["events"] > 0 and c["commands"] == 3 for eid, c in before.items() if eid in done)
        expected = {
            "commands_purged": sum(before[e]["commands"] for e in done),
            "events_purged": sum(before[e]["events"] for e in done),
            "outbox_purged": sum(before[e]["outbox"] for e in done),
            "runtime_purged": 1,
        }

        # Bad input: a clear 4xx, nothing changes.
        for bad in ({"dry_run": "maybe"}, {"command_retention_days": -1}, {"bogus": 1}, [1]):
            status, body = await api.post("/api/internal/cleanup/purge", json=bad, headers=AUTH)
            assert status in (400, 422), (bad, status, body)
        status, _ = await api.post("/api/internal/cleanup/purge", json={"dry_run": True})
        assert status in (401, 403)  # the internal gate

        status, dry = await api.post(
            "/api/internal/cleanup/purge", json={"dry_run": True, "event_retention_days": 1}, headers=AUTH
        )
        assert settings.ops.cleanup_batch_size == 3  # several batches per table below
        assert status == 200 and dry["dry_run"] is True, dry
        assert {k: dry[k] for k in expected} == expected
        assert {eid: await counts(api, eid) for eid in before} == before and "w-dead" in await runtimes(api)

        # Events are opt-in: without event_retention_days the log stays.
        status, first = await api.post("/api/internal/cleanup/purge", json={}, headers=AUTH)
        assert (
            status == 200
            and first["events_purged"] == 0
            and first["commands_purged"] == expected["commands_purged"]
        )
        status, second = await api.post(
            "/api/internal/cleanup/purge", json={"event_retention_days": 1}, headers=AUTH
        )
        assert status == 200 and second["events_purged"] == expected["events_purged"], second
        for eid in done:
            assert await counts(api, eid) == {"events": 0, "commands": 0, "outbox": 0}
        assert await counts(api, running) == before[running]
        assert await runtimes(api) == {"w-fresh-offline"}
        assert first["outbox_purged"] == expected["outbox_purged"]
        # The running execution still works after the purge.
        assert (await api.get(f"/api/executions/{running}"))[0] == 200
        metrics = (await api.get("/metrics"))[1]
        assert f'noetl_cleanup_purged_total{{kind="events"}} {float(expected["events_purged"])}' in metrics


async def test_consumers_role_runs_the_scheduled_purge(
    db_dsn: str, nats_url: str, ops_settings: MakeOps
) -> None:
    settings = ops_settings(
        db_dsn, nats_url, NOETL_CLEANUP_INTERVAL_SECONDS="0.2", NOETL_PROJECTIONS_ENABLED="false"
    )
    stop = asyncio.Event()
    async with running_api(settings) as api:
        await add_runtime(api, "w-dead", "offline", OLD)
        await add_runtime(api, "w-alive", "ready", "now()")
        task = asyncio.create_task(run_consumers(settings, stop=stop))
        try:

            async def purged() -> Any:
                return await runtimes(api) == {"w-alive"}

            await eventually(purged, timeout=20, what="scheduled purge removed the dead worker row")
            # A row that goes stale later is removed by a later run of the same loop.
            await add_runtime(api, "w-dead-2", "offline", OLD)
            await eventually(purged, timeout=20, what="a second scheduled run")
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)
