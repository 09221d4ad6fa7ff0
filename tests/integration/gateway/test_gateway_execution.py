"""GraphQL executePlaybook through the gateway with a real server and worker; frames over SSE (§8, §10)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.loops import SERVER_LOOPS
from tests.support.gateway import Stack, gateway_stack
from tests.support.playbooks import LINEAR, register, wait_terminal
from tests.support.sse import SseClient
from tests.support.test_worker import TestWorker
from tests.support.wait import eventually

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]

EXECUTE = """mutation Run($name: String!, $vars: JSON, $cid: String) {
  executePlaybook(name: $name, variables: $vars, clientId: $cid) {
    id executionId requestId name status textOutput } }"""
STATUS = "query Status($id: ID!) { execution(id: $id) { id status result path } }"


@pytest.fixture
async def stack(db_dsn: str, nats_url: str) -> AsyncIterator[Stack]:
    async with gateway_stack(db_dsn, nats_url, background=SERVER_LOOPS) as st, TestWorker(nats_url):
        await register(st.api, LINEAR)
        yield st


async def _true(value: bool) -> bool:
    return value


async def gql(st: Stack, token: str, query: str, **variables: Any) -> dict[str, Any]:
    status, out = await st.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert status == 200, out
    return out  # type: ignore[no-any-return]


def sse(st: Stack, token: str, client_id: str, **headers: str) -> SseClient:
    # NATS K/V outlives one test: a per-run suffix keeps client ids unbound at the start.
    cid = f"{client_id}-{RUN}"
    return SseClient(st.http, f"{st.url}/events?session_token={token}&client_id={cid}", headers)


async def test_execute_playbook_frames_arrive_over_sse(stack: Stack) -> None:
    st = stack
    token = await st.login(role="admin")
    await eventually(lambda: _true(st.gw.store.index.ready), what="request index caught up")
    async with sse(st, token, "client-a") as events:
        assert events.status == 200
        listings = st.gw.nats.listings  # the connect's pendingRequests listing is the only one
        init = await events.wait_for(lambda f: f.get("event") == "message", what="init frame")
        assert init["data"]["result"]["clientId"] == f"client-a-{RUN}" and init.get("retry") == "3000"
        out = await gql(st, token, EXECUTE, name="tests/linear", vars={"n": 4}, cid=f"client-a-{RUN}")
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
        # Lifecycle routing used the in-memory index: no K/V listing per forwarded event.
        assert st.gw.nats.listings == listings
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


async def callback_token(st: Stack, execution_id: str) -> str:
    """The per-request token the gateway put into the execution's workload (what a playbook sees)."""
    workload = await st.api.deps.pool.fetchval(
        "SELECT workload FROM execution WHERE execution_id = $1", int(execution_id)
    )
    import json

    data = json.loads(workload) if isinstance(workload, str) else workload
    return str(data["callback_token"])


async def start(st: Stack, token: str, client_id: str) -> dict[str, Any]:
    out = await gql(st, token, EXECUTE, name="tests/linear", vars={"n": 1}, cid=client_id)
    assert "errors" not in out, out
    return out["data"]["executePlaybook"]  # type: ignore[no-any-return]


async def test_callbacks_reach_only_the_owning_client(stack: Stack) -> None:
    st = stack
    alice = await st.login(role="admin")
    bob = await st.login(sub="auth0|bob", email="bob@example.com", role="admin")
    async with sse(st, alice, "cb-a") as a, sse(st, bob, "cb-b") as b:
        for c in (a, b):
            await c.wait_for(lambda f: f.get("event") == "message", what="init")
        run_a, run_b = await start(st, alice, f"cb-a-{RUN}"), await start(st, bob, f"cb-b-{RUN}")
        tok_a, tok_b = (
            await callback_token(st, run_a["executionId"]),
            await callback_token(st, run_b["executionId"]),
        )
        url = "/api/internal/callback/async"
        body = {"request_id": run_a["requestId"], "execution_id": run_a["executionId"], "data": {"x": 1}}
        status, out = await st.post(url, json=body)
        assert status == 401 and out["error"] == "missing callback credentials"
        for bad in ("forged", tok_b):  # a forged token, and another request's genuine token
            status, _ = await st.post(url, json=body, headers={"Authorization": f"Bearer {bad}"})
            assert status == 403
        status, out = await st.post(
            url,
            json={**body, "execution_id": run_b["executionId"]},
            headers={"Authorization": f"Bearer {tok_a}"},
        )
        assert status == 403 and out["error"] == "execution_id does not match request"
        status, _ = await st.post(
            url, json={**body, "request_id": "nope"}, headers={"Authorization": f"Bearer {tok_a}"}
        )
        assert status == 404
        assert not a.of("playbook/result")
        status, out = await st.post(
            "/api/internal/progress",
            json={"request_id": run_a["requestId"], "step": "s", "message": "half", "progress": 0.5},
            headers={"Authorization": f"Bearer {tok_a}"},
        )
        assert status == 200 and out == {"status": "sent"}
        status, out = await st.post(url, json=body, headers={"Authorization": f"Bearer {tok_a}"})
        assert status == 200 and out == {"status": "delivered"}
        result = await a.wait_for(lambda f: f.get("event") == "playbook/result", what="result frame")
        params = result["data"]["params"]
        assert params == {
            "requestId": run_a["requestId"],
            "executionId": run_a["executionId"],
            "status": "COMPLETED",
            "data": {"x": 1},
        }
        events = [f["event"] for f in a.frames]
        state_i = max(i for i, e in enumerate(events) if e == "playbook/state")
        assert events.index("playbook/result") == state_i + 1  # synthetic state right before the result
        assert a.of("playbook/progress")[0]["data"]["params"]["progress"] == 0.5
        # The request is gone after delivery; a replayed callback finds nothing.
        status, _ = await st.post(url, json=body, headers={"Authorization": f"Bearer {tok_a}"})
        assert status == 404
        # Bob's stream never carried anything of Alice's request or execution.
        for f in b.frames:
            text = str(f["data"])
            assert run_a["requestId"] not in text and run_a["executionId"] not in text
        # Bob cannot take over Alice's client id.
        async with sse(st, bob, "cb-a") as hijack:
            await hijack.wait_for(lambda f: f.get("event") == "error", what="hijack error")
            assert hijack.frames[0]["data"]["error"]["code"] == -32003


async def test_last_event_id_replays_missed_frames(stack: Stack) -> None:
    st = stack
    token = await st.login(role="admin")
    async with sse(st, token, "client-r") as first:
        await first.wait_for(lambda f: f.get("event") == "message", what="init")
        run = await start(st, token, f"client-r-{RUN}")
        await first.wait_for(
            lambda f: (
                f.get("event") == "playbook/state"
                and f["data"]["params"]["event_type"] == "playbook.completed"
            ),
            what="completion",
        )
        seen = [f["id"] for f in first.of("playbook/state")]
    assert len(seen) >= 2
    # Reconnect as if only the first frame had arrived: the rest is replayed from the event log.
    async with sse(st, token, "client-r", **{"Last-Event-ID": seen[0]}) as again:
        init = await again.wait_for(lambda f: f.get("event") == "message", what="init")
        pending = init["data"]["result"]["pendingRequests"]
        assert pending == [
            {"requestId": run["requestId"], "executionId": run["executionId"], "playbookPath": "tests/linear"}
        ]
        await again.wait_for(lambda f: f.get("id") == seen[-1], what="replayed last frame")
        replayed = [f["id"] for f in again.of("playbook/state")]
        assert replayed == seen[1:]
