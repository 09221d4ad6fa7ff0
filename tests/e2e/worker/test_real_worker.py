"""The real worker against the real server and NATS: results, failures, policy retry, cancellation."""

from __future__ import annotations

import pytest

from app.loops import SERVER_LOOPS
from tests.support.playbooks import FAILING, LINEAR, register, wait_terminal
from tests.support.real_worker import running_worker, worker_settings
from tests.support.server import make_settings, running_api
from tests.support.wait import eventually

pytestmark = pytest.mark.e2e

RETRYING = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: retrying, path: tests/retrying}
workflow:
  - step: start
    tool:
      kind: python
      code: |
        import os, pathlib
        p = pathlib.Path(marker)
        n = int(p.read_text()) + 1 if p.exists() else 1
        p.write_text(str(n))
        if n < 3:
            raise RuntimeError(f"flaky attempt {n}")
        result = {"attempts": n}
      input: {marker: "{{ workload.marker }}"}
      spec:
        policy:
          rules:
            - when: "{{ output.status == 'error' }}"
              then: {do: retry, attempts: 4, backoff: none}
    next: {arcs: [{step: after}]}
  - step: after
    tool: {kind: python, input: {a: "{{ start.attempts }}"}, code: "result = {'seen': a}"}
"""

PIPELINE = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: pipe, path: tests/pipe}
workload: {base: 10}
workflow:
  - step: start
    tool:
      - name: first
        kind: python
        input: {b: "{{ base }}"}
        code: "result = {'v': b + 1}"
        set: {carried: "{{ output.v }}"}
      - name: second
        kind: python
        input: {c: "{{ carried }}", f: "{{ first.v }}"}
        code: "result = {'w': c * 2, 'f': f}"
    next: {arcs: [{step: end}]}
  - step: end
    tool: {kind: python, input: {w: "{{ start.w }}", v: "{{ start.first.v }}"}, code: "result = {'w': w, 'v': v}"}
"""

LONG = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: long, path: tests/long}
workflow:
  - step: start
    tool:
      kind: python
      input: {pidfile: "{{ workload.pidfile }}"}
      code: |
        import os, time, pathlib
        pathlib.Path(pidfile).write_text(str(os.getpid()))
        time.sleep(60)
        result = {"slept": True}
"""


async def _detail(api, eid: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    status, body = await api.get(f"/api/executions/{eid}")
    assert status == 200, body
    return body  # type: ignore[no-any-return]


async def test_multi_step_playbook_completes_with_results(db_dsn: str, nats_url: str) -> None:
    settings = make_settings(db_dsn, nats_url)
    async with running_api(settings, SERVER_LOOPS) as api:
        async with running_worker(worker_settings(db_dsn, nats_url, api.url)) as worker:
            await register(api, LINEAR)
            _, started = await api.post("/api/execute", json={"path": "tests/linear", "workload": {"n": 5}})
            final = await wait_terminal(api, started["execution_id"])
            assert final["status"] == "COMPLETED", final
            assert final["completed_steps"] == ["start", "add", "end"]
            status, events = await api.get(
                f"/api/executions/{started['execution_id']}/events",
                params={"event_type": "call.done", "page_size": "50"},
            )
            assert status == 200
            rows = events["events"] if isinstance(events, dict) else events
            done = {
                e["node_name"]: e["result"]["context"]["result"]["context"]
                for e in rows
                if e["event_type"] == "call.done"
            }
            assert done["start"] == {"double": 10} and done["add"] == {"sum": 11}
            assert worker.outcomes.get("completed") == 3
            _, pools = await api.get("/api/worker/pools", params={"name": worker.ws.worker_id})
            assert pools["items"][0]["status"] == "ready"
            assert pools["items"][0]["labels"]["pool_name"] == "shared"
        _, pools = await api.get("/api/worker/pools", params={"name": worker.ws.worker_id})
        assert pools["items"][0]["status"] == "offline", "deregistered on stop"


async def test_pipeline_results_and_set(db_dsn: str, nats_url: str) -> None:
    settings = make_settings(db_dsn, nats_url)
    async with running_api(settings, SERVER_LOOPS) as api:
        async with running_worker(worker_settings(db_dsn, nats_url, api.url)):
            await register(api, PIPELINE)
            _, started = await api.post("/api/execute", json={"path": "tests/pipe"})
            final = await wait_terminal(api, started["execution_id"])
            assert final["status"] == "COMPLETED", final
            detail = await _detail(api, started["execution_id"])
            assert detail["result"] == {"w": 22, "v": 11}


async def test_failing_step_fails_with_readable_error(db_dsn: str, nats_url: str) -> None:
    settings = make_settings(db_dsn, nats_url)
    async with running_api(settings, SERVER_LOOPS) as api:
        async with running_worker(worker_settings(db_dsn, nats_url, api.url)):
            await register(api, FAILING)
            _, started = await api.post("/api/execute", json={"path": "tests/failing"})
            final = await wait_terminal(api, started["execution_id"])
            assert final["status"] == "FAILED" and final["failed"] is True
            assert "ValueError: kaboom" in (final["error"] or ""), final


async def test_policy_retry_runs_until_success(db_dsn: str, nats_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(db_dsn, nats_url)
    marker = tmp_path / "attempts"
    async with running_api(settings, SERVER_LOOPS) as api:
        async with running_worker(worker_settings(db_dsn, nats_url, api.url)):
            await register(api, RETRYING)
            _, started = await api.post(
                "/api/execute", json={"path": "tests/retrying", "workload": {"marker": str(marker)}}
            )
            final = await wait_terminal(api, started["execution_id"])
            assert final["status"] == "COMPLETED", final
            assert marker.read_text() == "3"
            detail = await _detail(api, started["execution_id"])
            assert detail["result"] == {"seen": 3}


async def test_cancellation_kills_a_long_python_step(db_dsn: str, nats_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os

    import psutil

    settings = make_settings(db_dsn, nats_url)
    pidfile = tmp_path / "pid"
    async with running_api(settings, SERVER_LOOPS) as api:
        async with running_worker(worker_settings(db_dsn, nats_url, api.url)) as worker:
            await register(api, LONG)
            _, started = await api.post(
                "/api/execute", json={"path": "tests/long", "workload": {"pidfile": str(pidfile)}}
            )
            eid = started["execution_id"]

            async def running() -> bool:
                return pidfile.exists() and pidfile.read_text().strip().isdigit()

            await eventually(running, timeout=20, what="the long step to start")
            pid = int(pidfile.read_text())
            assert psutil.pid_exists(pid)
            status, body = await api.post(f"/api/executions/{eid}/cancel", json={"reason": "test"})
            assert status == 200 and body["status"] == "cancelled", body

            async def killed() -> bool:
                try:
                    return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
                except psutil.NoSuchProcess:
                    return True

            await eventually(killed, timeout=10, what="the python runner to be killed")
            await eventually(
                lambda: _async(worker.outcomes.get("cancelled") == 1), timeout=10, what="cancelled outcome"
            )
            final = await wait_terminal(api, eid)
            assert final["status"] == "CANCELLED"
            assert os.getpid() != pid


async def _async(value: bool) -> bool:
    return value
