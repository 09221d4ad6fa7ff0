"""GraphQL executePlaybook through the gateway with a real server and worker; frames over SSE (§8, §10)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.loops import SERVER_LOOPS
from tests.support.gateway import Stack, gateway_stack
from tests.support.playbooks import LINEAR, register, wait_terminal
from tests.support.sse import SseClient
from tests.support.test_worker import TestWorker

pytestmark = pytest.mark.integration

EXECUTE = """mutation Run($name: String!, $vars: JSON, $cid: String) {
  executePlaybook(name: $name, variables: $vars, clientId: $cid) {
    id executionId requestId name status textOutput } }"""
STATUS = "query Status($id: ID!) { execution(id: $id) { id status result path } }"


@pytest.fixture
async def stack(db_dsn: str, nats_url: str) -> AsyncIterator[Stack]:
    async with gateway_stack(db_dsn, nats_url, background=SERVER_LOOPS) as st, TestWorker(nats_url):
        await register(st.api, LINEAR)
        yield st


async def gql(st: Stack, token: str, query: str, **variables: Any) -> dict[str, Any]:
    status, out = await st.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert status == 200, out
    return out  # type: ignore[no-any-return]


def sse(st: Stack, token: str, client_id: str, **headers: str) -> SseClient:
    return SseClient(st.http, f"{st.url}/events?session_token={token}&client_id={client_id}", headers)


async def test_execute_playbook_frames_arrive_over_sse(stack: Stack) -> None:
    st = stack
    token = await st.login(role="admin")
    async with sse(st, token, "client-a") as events:
        assert events.status == 200
        init = await events.wait_for(lambda f: f.get("event") == "message", what="init frame")
        assert init["data"]["result"]["clientId"] == "client-a" and init.get("retry") == "3000"
        out = await gql(st, token, EXECUTE, name="tests/linear", vars={"n": 4}, cid="client-a")
        assert "errors" not in out, out
        run = out["data"]["executePlaybook"]
        eid = run["executionId"]
        assert run["id"] == eid and run["requestId"] and run["name"] == "linear"
        assert run["textOutput"] is None
        done = await events.wait_for(
            lambda f: (
                f.get("event") == "playbook/state"
                and f["data"]["params"]["event_type"] == "playbook.completed"
            ),
            what="playbook.completed frame",
        )
        params = done["data"]["params"]
        assert params["execution_id"] == eid and params["status"] == "completed"
        assert done["id"].isdigit()
        steps = [f["data"]["params"] for f in events.of("playbook/state")]
        assert {p["execution_id"] for p in steps} == {eid}
        assert "step.exit" in {p["event_type"] for p in steps}
        ids = [f["id"] for f in events.of("playbook/state")]
        assert len(ids) == len(set(ids))  # never twice on one stream
    await wait_terminal(st.api, eid)
    out = await gql(st, token, STATUS, id=eid)
    assert out["data"]["execution"]["id"] == eid
    assert out["data"]["execution"]["status"] == "COMPLETED"
    assert out["data"]["execution"]["path"] == "tests/linear"


async def test_viewer_cannot_execute_and_execution_lookup_errors(stack: Stack) -> None:
    st = stack
    viewer = await st.login(role="viewer")
    before = await st.api.deps.pool.fetchval("SELECT count(*) FROM execution")
    out = await gql(st, viewer, EXECUTE, name="tests/linear", vars={}, cid=None)
    assert out["data"] is None
    assert out["errors"][0]["message"].startswith("Access denied")
    assert out["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await st.api.deps.pool.fetchval("SELECT count(*) FROM execution") == before
    admin = await st.login(sub="auth0|root", email="root@example.com", role="admin")
    out = await gql(st, admin, STATUS, id="not-a-number")
    assert out["data"] == {"execution": None} and "not a valid i64" in out["errors"][0]["message"]
    out = await gql(st, admin, STATUS, id="123456789")
    assert out["data"] == {"execution": None}
