"""HTTP → events → outbox → NATS → worker → events, end to end, in both worker dialects."""

from __future__ import annotations

import pytest

from app.loops import SERVER_LOOPS
from tests.support.playbooks import FAILING, FANOUT, LINEAR, register, wait_terminal
from tests.support.server import make_settings, running_api
from tests.support.test_worker import TestWorker

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("dialect", ["project", "python"])
async def test_linear_playbook_completes(db_dsn: str, nats_url: str, dialect: str) -> None:
    settings = make_settings(db_dsn, nats_url)
    async with running_api(settings, SERVER_LOOPS) as api, TestWorker(nats_url, dialect=dialect) as worker:
        reg = await register(api, LINEAR)
        assert reg["version"] == 1 and reg["kind"] == "playbook" and isinstance(reg["catalog_id"], str)
        status, started = await api.post(
            "/api/execute", json={"path": "tests/linear", "workload": {"n": 5}, "resource_kind": "playbook"}
        )
        assert status == 200 and started["status"] == "started" and started["commands_generated"] == 1
        assert isinstance(started["execution_id"], str)
        try:
            final = await wait_terminal(api, started["execution_id"])
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; worker errors: {worker.errors}; claims: {worker.claim_statuses}"
            ) from None
        assert final["status"] == "COMPLETED" and final["completed"] is True and final["failed"] is False
        assert final["completed_steps"] == ["start", "add", "end"]
        claim = worker.claims[0]
        assert isinstance(claim["execution_id"], int) and claim["node_name"] == "start"
        assert claim["action"] == "python" and claim["context"]["input"] == {"n": 5}
        assert claim["context"]["render_context"]["server_url"] == settings.server.server_url
        status, detail = await api.get(f"/api/executions/{started['execution_id']}")
        assert status == 200 and detail["status"] == "COMPLETED" and detail["progress"] == 100
        assert detail["events"][0]["event_type"] == "playbook.completed"


async def test_fanout_join_runs_once(db_dsn: str, nats_url: str) -> None:
    async with (
        running_api(make_settings(db_dsn, nats_url), SERVER_LOOPS) as api,
        TestWorker(nats_url) as worker,
    ):
        await register(api, FANOUT)
        _, started = await api.post("/api/execute", json={"path": "tests/fanout"})
        final = await wait_terminal(api, started["execution_id"])
        assert final["status"] == "COMPLETED"
        steps = [c["node_name"] for c in worker.claims]
        assert sorted(steps) == ["a", "b", "join", "start"]
        join = next(c for c in worker.claims if c["node_name"] == "join")
        assert join["context"]["input"] == {"a": "a", "b": "b"}


async def test_failure_reaches_failed_with_error(db_dsn: str, nats_url: str) -> None:
    async with running_api(make_settings(db_dsn, nats_url), SERVER_LOOPS) as api, TestWorker(nats_url):
        await register(api, FAILING)
        _, started = await api.post("/api/execute", json={"path": "tests/failing"})
        final = await wait_terminal(api, started["execution_id"])
        assert final["status"] == "FAILED" and final["failed"] is True
        assert "boom" in (final["error"] or "")
        assert final["completed_steps"] == ["start"]
