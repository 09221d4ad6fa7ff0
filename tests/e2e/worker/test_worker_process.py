"""The worker as a real process: kill -9 mid-step is recovered by lease + reaper; SIGTERM drains."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from app.loops import SERVER_LOOPS
from tests.support.playbooks import register, wait_terminal
from tests.support.real_worker import WorkerProcess, worker_env
from tests.support.server import make_settings, running_api
from tests.support.wait import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SLOW = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: slow, path: tests/slow}
workflow:
  - step: start
    tool:
      kind: python
      input: {log: "{{ workload.log }}", seconds: "{{ workload.seconds }}"}
      code: |
        import time
        with open(log, "a") as f:
            f.write("start\\n")
        time.sleep(seconds)
        with open(log, "a") as f:
            f.write("end\\n")
        result = {"slept": seconds}
"""


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


async def _completed_events(api, eid: str) -> int:  # type: ignore[no-untyped-def]
    _, body = await api.get(
        f"/api/executions/{eid}/events", params={"event_type": "command.completed", "page_size": "50"}
    )
    return len(body["events"])


async def _worker_status(api, name: str) -> str | None:  # type: ignore[no-untyped-def]
    _, pools = await api.get("/api/worker/pools", params={"name": name})
    return pools["items"][0]["status"] if pools["items"] else None


async def test_kill_9_mid_step_is_reclaimed_and_completes_once(
    db_dsn: str, nats_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        db_dsn,
        nats_url,
        NOETL_COMMAND_CLAIM_LEASE_SECONDS="2",
        NOETL_COMMAND_WORKER_HEARTBEAT_STALE_SECONDS="2",
        NOETL_COMMAND_REAPER_INTERVAL_SECONDS="1",
        NOETL_COMMAND_REAPER_WORKER_STALE_SECONDS="2",
    )
    log = tmp_path / "runs.log"
    async with running_api(settings, SERVER_LOOPS) as api:
        durable = "wr_kill_" + os.urandom(3).hex()
        env_a = worker_env(db_dsn, nats_url, api.url, NATS_CONSUMER=durable)
        a = WorkerProcess(env_a, tmp_path / "a.log").start()
        b: WorkerProcess | None = None
        try:
            await eventually(
                lambda: _worker_status(api, env_a["WORKER_ID"]), timeout=30, what="worker A registered"
            )
            await register(api, SLOW)
            _, started = await api.post(
                "/api/execute", json={"path": "tests/slow", "workload": {"log": str(log), "seconds": 3}}
            )
            eid = started["execution_id"]
            await eventually(
                lambda: asyncio.sleep(0, result=_lines(log) == ["start"]), timeout=20, what="A started"
            )
            os.kill(a.pid, signal.SIGKILL)
            a.proc.wait(10)  # type: ignore[union-attr]
            b = WorkerProcess(
                worker_env(db_dsn, nats_url, api.url, NATS_CONSUMER=durable), tmp_path / "b.log"
            ).start()
            try:
                final = await wait_terminal(api, eid, timeout=60)
            except AssertionError:
                _, evs = await api.get(f"/api/executions/{eid}/events", params={"page_size": "100"})
                trail = [(e["event_type"], e["node_name"], e["status"]) for e in evs["events"]]
                raise AssertionError(
                    f"not terminal; events {trail}; runs {_lines(log)}; B: {b.log()[-3000:]}"
                ) from None
            assert final["status"] == "COMPLETED", (final, b.log()[-2000:])
            assert _lines(log) == ["start", "start", "end"], "A's runner died with A; B ran it once"
            assert await _completed_events(api, eid) == 1
            _, cmd_events = await api.get(
                f"/api/executions/{eid}/events", params={"event_type": "command.claimed", "page_size": "50"}
            )
            assert len(cmd_events["events"]) == 2  # A's claim, then B's reclaim
        finally:
            a.stop()
            if b is not None:
                b.stop()


async def test_sigterm_finishes_the_step_then_deregisters(db_dsn: str, nats_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_dsn, nats_url)
    log = tmp_path / "runs.log"
    async with running_api(settings, SERVER_LOOPS) as api:
        env = worker_env(db_dsn, nats_url, api.url, NOETL_WORKER_DRAIN_TIMEOUT_SECONDS="30")
        w = WorkerProcess(env, tmp_path / "w.log").start()
        try:
            await eventually(lambda: _worker_status(api, env["WORKER_ID"]), timeout=30, what="registered")
            await register(api, SLOW)
            _, started = await api.post(
                "/api/execute", json={"path": "tests/slow", "workload": {"log": str(log), "seconds": 2}}
            )
            eid = started["execution_id"]
            await eventually(
                lambda: asyncio.sleep(0, result=_lines(log) == ["start"]), timeout=20, what="step started"
            )
            os.kill(w.pid, signal.SIGTERM)
            assert await asyncio.to_thread(w.proc.wait, 40) == 0, w.log()[-2000:]  # type: ignore[union-attr]
            assert _lines(log) == ["start", "end"]
            final = await wait_terminal(api, eid, timeout=10)
            assert final["status"] == "COMPLETED"
            assert await _completed_events(api, eid) == 1
            assert await _worker_status(api, env["WORKER_ID"]) == "offline"
        finally:
            w.stop()
