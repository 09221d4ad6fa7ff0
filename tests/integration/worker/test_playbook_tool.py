"""The playbook tool against the real server; tests/support/test_worker.py runs the child's commands."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.loops import SERVER_LOOPS
from app.worker.tools import playbook
from app.worker.tools.base import ToolCancelled, ToolError
from tests.integration.worker.conftest import keyed_settings
from tests.support.playbooks import register
from tests.support.server import Api, running_api
from tests.support.simple_api import SimpleApi
from tests.support.test_worker import TestWorker
from tests.support.tool_context import make_ctx
from tests.support.wait import eventually

pytestmark = pytest.mark.integration

PARENT = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: parent, path: tests/tools/parent}
workflow:
  - step: start
    tool: {kind: noop}
"""

CHILD = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: child, path: tests/tools/child}
workload: {n: 1}
workflow:
  - step: start
    tool: {kind: python, input: {n: "{{ n }}"}, code: "result = {'doubled': n * 2}"}
    next: {arcs: [{step: tail}]}
  - step: tail
    tool: {kind: python, input: {d: "{{ start.doubled }}"}, code: "result = {'plus_one': d + 1}"}
"""

CHILD_FAILS = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: child_fails, path: tests/tools/child_fails}
workflow:
  - step: start
    tool: {kind: python, code: "raise ValueError('child broke')"}
"""


class Env:
    def __init__(self, api: Api, server: SimpleApi, worker: TestWorker, parent_id: int) -> None:
        self.api, self.server, self.worker, self.parent_id = api, server, worker, parent_id
        self.catalog: dict[str, str] = {}

    def ctx(self) -> Any:
        return make_ctx(api=self.server, execution_id=self.parent_id, server_url=self.api.url)


@pytest.fixture
async def env(db_dsn: str, nats_url: str) -> AsyncIterator[Env]:
    async with (
        running_api(keyed_settings(db_dsn, nats_url), SERVER_LOOPS) as api,
        TestWorker(nats_url) as worker,
        SimpleApi(api.url) as server,
    ):
        catalog: dict[str, str] = {}
        for text in (PARENT, CHILD, CHILD_FAILS):
            reg = await register(api, text)
            catalog[reg.get("path") or ""] = reg["catalog_id"]
        status, started = await api.post("/api/execute", json={"path": "tests/tools/parent"})
        assert status == 200, started
        env = Env(api, server, worker, int(started["execution_id"]))
        env.catalog = catalog
        yield env


async def test_fire_and_forget_starts_a_child_of_this_execution(env: Env) -> None:
    result = await playbook.run({"path": "tests/tools/child", "input": {"n": 4}}, env.ctx())
    assert result["status"] == "started" and result["async"] is True and result["path"] == "tests/tools/child"
    child = result["execution_id"]
    assert isinstance(child, str) and child.isdigit()
    status, detail = await env.api.get(f"/api/executions/{child}")
    assert status == 200 and detail["parent_execution_id"] == str(env.parent_id)
    assert detail["workload"]["n"] == 4


async def test_return_step_gives_the_status_summary(env: Env) -> None:
    cfg = {
        "path": "tests/tools/child",
        "input": {"n": 5},
        "return_step": "tail",
        "poll_interval": 0.1,
        "timeout": 30,
    }
    result = await playbook.run(cfg, env.ctx())
    assert result["status"] == "COMPLETED", (result, env.worker.errors)
    assert result["completed_steps"] == ["start", "tail"] and "progress" in result
    assert "plus_one" not in result  # a status summary, not the named step's result


async def test_return_step_failed_child_does_not_fail_the_step(env: Env) -> None:
    cfg = {"path": "tests/tools/child_fails", "return_step": "start", "poll_interval": 0.1, "timeout": 30}
    result = await playbook.run(cfg, env.ctx())
    assert result["status"] == "FAILED" and "child broke" in (result["error"] or "")


async def test_return_result_gives_the_last_step_data(env: Env) -> None:
    cfg = {"path": "tests/tools/child", "args": {"n": 5}, "return_result": True, "poll_interval": 0.1}
    assert await playbook.run(cfg, env.ctx()) == {"plus_one": 11}


async def test_return_result_of_a_named_step(env: Env) -> None:
    cfg = {
        "path": "tests/tools/child",
        "payload": {"n": 6},
        "return_result": True,
        "result_step": "start",
        "poll_interval": 0.1,
    }
    assert await playbook.run(cfg, env.ctx()) == {"doubled": 12}


async def test_return_result_failed_child_fails_the_step(env: Env) -> None:
    cfg = {"path": "tests/tools/child_fails", "return_result": True, "poll_interval": 0.1, "timeout": 30}
    with pytest.raises(ToolError) as err:
        await playbook.run(cfg, env.ctx())
    assert err.value.code == "child_failed" and "child broke" in err.value.message
    assert err.value.data["status"] == "FAILED"


async def test_wait_timeout(env: Env) -> None:
    env.worker.hold.clear()  # the child's commands wait, so it never finishes
    cfg = {"path": "tests/tools/child", "return_step": "x", "poll_interval": 0.1, "timeout": 0.5}
    result = await playbook.run(cfg, env.ctx())
    assert result["status"] == "timeout" and result["timeout_seconds"] == 0.5
    assert result["execution_id"].isdigit()


async def test_cancellation_stops_waiting(env: Env) -> None:
    env.worker.hold.clear()
    ctx = env.ctx()
    cfg = {"path": "tests/tools/child", "return_result": True, "poll_interval": 0.1, "timeout": 60}
    task = asyncio.create_task(playbook.run(cfg, ctx))

    async def started() -> bool:
        return any(method == "GET" and path.endswith("/status") for method, path in env.server.calls)

    await eventually(started, timeout=10, what="the tool polling the child")
    ctx.cancelled.set()
    with pytest.raises(ToolCancelled):
        await asyncio.wait_for(task, timeout=5)


async def test_unknown_child_path(env: Env) -> None:
    with pytest.raises(ToolError) as err:
        await playbook.run({"path": "tests/tools/nope"}, env.ctx())
    assert err.value.code == "not_found" and "tests/tools/nope" in err.value.message


async def test_path_or_catalog_id_required(env: Env) -> None:
    with pytest.raises(ToolError) as err:
        await playbook.run({"input": {}}, env.ctx())
    assert err.value.code == "invalid_config"


async def test_child_by_catalog_id_and_version(env: Env) -> None:
    v2 = CHILD.replace("'doubled': n * 2", "'doubled': n * 3")
    await register(env.api, v2)
    by_version = {
        "path": "tests/tools/child",
        "version": 1,
        "input": {"n": 2},
        "return_result": True,
        "result_step": "start",
        "poll_interval": 0.1,
    }
    assert await playbook.run(by_version, env.ctx()) == {"doubled": 4}
    latest = {**by_version, "version": None}
    assert await playbook.run(latest, env.ctx()) == {"doubled": 6}
    cid = env.catalog["tests/tools/child"]
    by_id = {
        "catalog_id": cid,
        "input": {"n": 2},
        "return_result": True,
        "result_step": "start",
        "poll_interval": 0.1,
    }
    assert await playbook.run(by_id, env.ctx()) == {"doubled": 4}
