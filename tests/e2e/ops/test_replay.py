"""Projections: a workload through the real server, then wipe + `replay` rebuilds exactly what was live."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from faststream.nats import NatsBroker

from app.devstack.nats import EmbeddedNats
from app.loops import SERVER_LOOPS
from handlers.nats import projector
from handlers.roles.replay import run_replay
from tests.support.playbooks import FAILING, FANOUT, LINEAR, register, wait_terminal
from tests.support.server import Api, make_settings, running_api
from tests.support.test_worker import TestWorker
from tests.support.wait import eventually

pytestmark = pytest.mark.e2e

# Columns the log determines. Wall-clock columns (claimed_at, updated_at, ...) are not part of the contract.
COMMAND_SQL = """
SELECT command_id, event_id, execution_id, catalog_id, parent_execution_id, step_name, tool_kind, status,
       worker_id, latest_event_id, result, error
  FROM command ORDER BY execution_id, command_id
"""
EXECUTION_SQL = "SELECT execution_id, status, state, state_seq FROM execution ORDER BY execution_id"
READ_MODEL_SQL = {
    "rm_execution_summary": "SELECT * FROM rm_execution_summary ORDER BY execution_id",
    "rm_playbook_run": "SELECT * FROM rm_playbook_run ORDER BY execution_id",
    "rm_playbook_stats": "SELECT * FROM rm_playbook_stats ORDER BY path",
    "rm_command_state": "SELECT * FROM rm_command_state ORDER BY execution_id, command_id",
}


async def snapshot(api: Api) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for name, sql in {"command": COMMAND_SQL, "execution": EXECUTION_SQL, **READ_MODEL_SQL}.items():
        rows = [dict(r) for r in await api.deps.pool.fetch(sql)]
        for r in rows:
            r.pop("updated_at", None)
        out[name] = rows
    return out


async def wipe(api: Api) -> None:
    async with api.deps.pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM command")
        await conn.execute("UPDATE execution SET status = 'RUNNING', state = NULL, state_seq = 0")
        for table in READ_MODEL_SQL:
            await conn.execute(f"DELETE FROM {table}")


async def test_replay_rebuilds_live_projections(db_dsn: str, own_nats: EmbeddedNats) -> None:
    settings = make_settings(db_dsn, own_nats.url)
    rnd = random.Random(20261204)
    async with running_api(settings, SERVER_LOOPS) as api, TestWorker(own_nats.url) as worker:
        broker = NatsBroker(**settings.nats.connect_options())  # type: ignore[arg-type]
        projector.register(broker, api.deps)
        await broker.start()
        try:
            for text in (LINEAR, FANOUT, FAILING):
                await register(api, text)
            paths = ["tests/linear", "tests/fanout", "tests/failing"]
            started = []
            for _ in range(7):
                body: dict[str, Any] = {"path": rnd.choice(paths)}
                if body["path"] == "tests/linear":
                    body["workload"] = {"n": rnd.randint(1, 50)}
                status, res = await api.post("/api/execute", json=body)
                assert status == 200, res
                started.append(res["execution_id"])
            finals = [await wait_terminal(api, eid, timeout=40) for eid in started]
            assert {f["status"] for f in finals} <= {"COMPLETED", "FAILED"}, worker.errors

            async def caught_up() -> bool:
                pending = await api.deps.pool.fetchval(
                    "SELECT count(*) FROM outbox WHERE status <> 'PUBLISHED'"
                )
                lags = await projector.export_lag(api.deps)
                return pending == 0 and bool(lags) and all(v == 0 for v in lags.values())

            await eventually(caught_up, timeout=30, what="projectors caught up with the mirror")
        finally:
            await broker.stop()

        # The lag metric is exported per projection.
        metrics = (await api.get("/metrics"))[1]
        assert 'noetl_projection_lag_events{projection="execution_summary"} 0.0' in metrics

        live = await snapshot(api)
        assert len(live["execution"]) == 7 and len(live["rm_execution_summary"]) == 7
        assert sum(r["runs"] for r in live["rm_playbook_stats"]) == 7
        assert all(r["status"] in ("COMPLETED", "FAILED") for r in live["rm_command_state"])
        failed = [r for r in live["rm_execution_summary"] if r["status"] == "FAILED"]
        assert failed and all("kaboom" in (r["last_error"] or "") for r in failed), [
            r["last_error"] for r in failed
        ]

        await wipe(api)
        assert (await snapshot(api))["command"] == []
        report = await run_replay(settings, None, None)
        assert report["executions"] == 7 and report["events"] > 7 * 5
        rebuilt = await snapshot(api)
        for name in live:
            assert rebuilt[name] == live[name], name

        # One execution, one projection: only that one is touched.
        one = int(started[0])
        await api.deps.pool.execute("DELETE FROM rm_execution_summary WHERE execution_id = $1", one)
        report = await run_replay(settings, "execution_summary", one)
        assert report["executions"] == 1 and report["projections"] == ["execution_summary"]
        assert (await snapshot(api)) == live


def test_replay_cli_rejects_an_unknown_projection(db_dsn: str) -> None:
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "noetl-control-plane"), "replay", "--projection", "nope"],
        env={"DATABASE_URL": db_dsn, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "unknown projection 'nope'" in proc.stderr and "execution_summary" in proc.stderr
