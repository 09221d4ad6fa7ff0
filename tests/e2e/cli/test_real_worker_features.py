"""Acceptance of the worker issue: the official CLI runs playbooks on real `noetl-control-plane worker`
processes, using every tool kind and the engine's DSL features, and `noetl status` reports the outcome."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import nats
import pytest
from aiohttp import web

from app.devstack.ports import free_port
from app.loops import SERVER_LOOPS
from tests.e2e.cli.test_official_cli import cli
from tests.support.playbooks import wait_terminal
from tests.support.server import Api, make_settings, running_api
from tests.support.wait import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.cli, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  # base64 of 32 bytes, a test KEK

CHILD = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: child, path: tests/features_child}
workload: {x: 1}
workflow:
  - step: start
    tool: {kind: python, input: {x: "{{ x }}"}, code: "result = {'y': x * 10}"}
"""

FEATURES = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: features, path: tests/features}
workload: {items: [1, 2, 3], threshold: 4, api_url: "API_URL", bucket: "BUCKET"}
workflow:
  - step: start
    tool: {kind: noop}
    set: {ctx.total: 0}
    next:
      spec: {mode: inclusive}
      arcs: [{step: square}, {step: sh}, {step: sql}, {step: kv}, {step: child}, {step: fetch_all}]
  - step: square
    loop: {in: "{{ items }}", iterator: n, spec: {mode: parallel, max_in_flight: 2}}
    tool: {kind: python, input: {n: "{{ iter.n }}"}, code: "result = {'sq': n * n}"}
    next: {arcs: [{step: total, when: "{{ event.name == 'loop.done' }}"}]}
  - step: total
    tool:
      kind: python
      input: {rows: "{{ square.results }}"}
      code: "result = {'sum': sum(r['sq'] for r in rows)}"
    set: {ctx.total: "{{ total.sum }}"}
    next:
      spec: {mode: exclusive}
      arcs:
        - {step: big, when: "{{ ctx.total > threshold }}"}
        - {step: small}
  - step: big
    tool: {kind: noop, result: {path: big}}
    next: {arcs: [{step: report}]}
  - step: small
    tool: {kind: noop, result: {path: small}}
    next: {arcs: [{step: report}]}
  - step: sh
    tool: {kind: shell, cmds: ["echo hello-$WHO"], env: {WHO: shell}}
    next: {arcs: [{step: report}]}
  - step: sql
    tool:
      kind: postgres
      auth: pg_features
      command: "CREATE TEMP TABLE t (v int); INSERT INTO t VALUES (2), (5); SELECT sum(v) AS s FROM t;"
    next: {arcs: [{step: report}]}
  - step: kv
    tool: {kind: nats, auth: nats_features, operation: kv_put, bucket: "{{ bucket }}", key: k1, value: v1}
    next: {arcs: [{step: report}]}
  - step: child
    tool: {kind: playbook, path: tests/features_child, input: {x: 4}, return_result: true}
    next: {arcs: [{step: report}]}
  - step: fetch_all
    tool:
      - name: fetch
        kind: http
        url: "{{ api_url }}/report"
        spec:
          policy:
            rules:
              - when: "{{ output.status == 'error' and output.error.retryable }}"
                then: {do: retry, attempts: 3, backoff: exponential, delay: 0.2}
        set: {report: "{{ output.data }}"}
      - name: count
        kind: python
        input: {report: "{{ report }}"}
        code: "result = {'rows': len(report['rows'])}"
    next: {arcs: [{step: report}]}
  - step: report
    tool:
      kind: python
      input:
        total: "{{ ctx.total }}"
        branch: "{{ big.path }}"
        out: "{{ sh.stdout }}"
        rows: "{{ sql.rows }}"
        kv: "{{ kv.status }}"
        child_y: "{{ child.y }}"
        fetched: "{{ fetch_all.rows }}"
      code: |
        assert total == 14, total
        assert branch == "big", branch
        assert out.strip() == "hello-shell", out
        assert rows == [{"s": 7}], rows
        assert kv == "success", kv
        assert child_y == 40, child_y
        assert fetched == 3, fetched
        result = {"checked": 7}
"""

SLEEPY = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: sleepy, path: tests/sleepy}
workflow:
  - step: start
    tool: {kind: noop}
    next: {arcs: [{step: nap}]}
  - step: nap
    tool: {kind: python, code: "import time\\ntime.sleep(120)\\nresult = {'woke': True}"}
"""


@contextlib.contextmanager
def worker_process(api_url: str, nats_url: str, log: Path, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """A real `noetl-control-plane worker` child process; SIGTERM and reaped on exit."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("NOETL_", "NATS_", "WORKER_"))}
    e.update(
        {
            "NOETL_SERVER_URL": api_url,
            "NATS_URL": nats_url,
            "WORKER_POOL_NAME": "shared",
            "WORKER_ID": f"accept-{uuid.uuid4().hex[:8]}",
            "NATS_CONSUMER": f"accept_{uuid.uuid4().hex[:8]}",
            "WORKER_MAX_CONCURRENT": "8",
            "WORKER_HEARTBEAT_INTERVAL": "1",
            "NOETL_WORKER_CANCEL_POLL_SECONDS": "0.5",
            "NOETL_LOG_LEVEL": "info",
            **env,
        }
    )
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "worker"],
            env=e,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


@contextlib.asynccontextmanager
async def flaky_report_server() -> Any:
    """An HTTP API whose first call answers 503 (retried by the task policy), then the report."""
    calls: list[str] = []

    async def report(request: web.Request) -> web.Response:
        calls.append(request.method)
        if len(calls) == 1:
            return web.json_response({"error": "warming up"}, status=503)
        return web.json_response({"rows": [1, 2, 3]})

    app = web.Application()
    app.router.add_get("/report", report)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", calls
    finally:
        await runner.cleanup()


def _execution_id(out: str) -> str:
    found = re.search(r'"execution_id"\s*:\s*"?(\d+)', out)
    assert found, out
    return found.group(1)


async def _credentials(api: Api, db_dsn: str, nats_url: str) -> None:
    u = urlparse(db_dsn)
    pg = {
        "db_host": u.hostname,
        "db_port": u.port or 5432,
        "db_user": u.username,
        "db_password": u.password or "",
        "db_name": u.path.lstrip("/"),
    }
    for name, kind, data in (
        ("pg_features", "postgres", pg),
        ("nats_features", "nats", {"nats_url": nats_url}),
    ):
        status, body = await api.post("/api/credentials", json={"name": name, "type": kind, "data": data})
        assert status == 200, body


async def test_cli_runs_every_tool_and_feature_on_real_workers(
    db_dsn: str, nats_url: str, noetl_cli: Path, tmp_path: Path
) -> None:
    settings = make_settings(db_dsn, nats_url, NOETL_ENCRYPTION_KEY=KEY)
    port = settings.server.port
    home = tmp_path / "home"
    home.mkdir()
    books = tmp_path / "books"
    books.mkdir()
    bucket = f"features_{uuid.uuid4().hex[:8]}"
    nc = await nats.connect(nats_url)
    await nc.jetstream().create_key_value(bucket=bucket)
    log = tmp_path / "worker.log"
    try:
        async with (
            running_api(settings, SERVER_LOOPS) as api,
            flaky_report_server() as (report_url, calls),
        ):
            await _credentials(api, db_dsn, nats_url)
            (books / "child.yaml").write_text(textwrap.dedent(CHILD))
            text = FEATURES.replace("API_URL", report_url).replace("BUCKET", bucket)
            (books / "features.yaml").write_text(textwrap.dedent(text))
            (books / "sleepy.yaml").write_text(textwrap.dedent(SLEEPY))
            rc, out = await cli(noetl_cli, port, home, "catalog", "load", str(books))
            assert rc == 0, out
            with worker_process(api.url, nats_url, log), worker_process(api.url, nats_url, log):
                await eventually(lambda: _ready_workers(api, 2), timeout=60, what="two ready workers")
                rc, out = await cli(noetl_cli, port, home, "run", "tests/features", "-r", "distributed")
                assert rc == 0, out
                eid = _execution_id(out)
                try:
                    final = await wait_terminal(api, eid, timeout=90)
                except AssertionError as exc:
                    raise AssertionError(f"{exc}\n{await _explain(api, eid, log)}") from None
                assert final["status"] == "COMPLETED", await _explain(api, eid, log)
                rc, out = await cli(noetl_cli, port, home, "status", eid, "--json")
                assert rc == 0, out
                shown = json.loads(out[out.index("{") :])
                assert shown["completed"] is True and shown["failed"] is False
                done = set(shown["completed_steps"])
                assert {"square", "total", "big", "sh", "sql", "kv", "child", "fetch_all", "report"} <= done
                assert "small" not in done
                assert calls == ["GET", "GET"]  # one 503, one retry
                kv = await nc.jetstream().key_value(bucket)
                assert (await kv.get("k1")).value == b"v1"

                rc, out = await cli(noetl_cli, port, home, "run", "tests/sleepy", "-r", "distributed")
                sleepy = _execution_id(out)

                async def napping() -> bool:
                    _, st = await api.get(f"/api/executions/{sleepy}/status")
                    return st.get("current_step") == "nap" and st.get("status") == "RUNNING"

                await eventually(napping, timeout=30, what="the nap step to run")
                await eventually(lambda: _started(api, sleepy), timeout=30, what="nap command.started")
                rc, out = await cli(noetl_cli, port, home, "cancel", sleepy, "--reason", "acceptance")
                assert rc == 0, out
                failed = await eventually(
                    lambda: _cancel_reported(api, sleepy), timeout=20, what="the worker to stop the nap"
                )
                assert "cancel" in json.dumps(failed).lower()
                _, st = await api.get(f"/api/executions/{sleepy}/status")
                assert st["status"] == "CANCELLED"
    finally:
        await nc.close()


async def _ready_workers(api: Api, n: int) -> bool:
    """True once n accept-* workers registered and their durable consumers exist (status ready)."""
    _, pools = await api.get("/api/worker/pools")
    items = pools.get("items", []) if isinstance(pools, dict) else []
    ready = [w for w in items if str(w.get("name", "")).startswith("accept-") and w.get("status") == "ready"]
    return len(ready) >= n


async def _explain(api: Api, eid: str, log: Path) -> str:
    """What an execution that did not complete did: its status, events and the workers' log tail."""
    _, st = await api.get(f"/api/executions/{eid}/status")
    events = [
        (e.get("event_type"), e.get("node_name"), e.get("status"), str(e.get("error") or "")[:300])
        for e in await _events(api, eid)
    ]
    return f"status: {st}\nevents: {events}\nworker log: {log.read_text()[-3000:]}"


async def _events(api: Api, eid: str) -> list[dict[str, Any]]:
    status, body = await api.get(f"/api/executions/{eid}/events")
    assert status == 200, body
    return body["events"] if isinstance(body, dict) else body


async def _started(api: Api, eid: str) -> bool:
    return any(
        e.get("event_type") == "command.started" and e.get("node_name") == "nap"
        for e in await _events(api, eid)
    )


async def _cancel_reported(api: Api, eid: str) -> dict[str, Any] | None:
    for e in await _events(api, eid):
        if e.get("event_type") == "command.failed" and e.get("node_name") == "nap":
            return e
    return None
