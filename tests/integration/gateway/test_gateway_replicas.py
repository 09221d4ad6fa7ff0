"""Two gateway replicas sharing NATS, and NATS failing under a running gateway (gateway.md §7.3, §9.5)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.devstack.nats import EmbeddedNats
from app.gateway.core import Gateway
from tests.integration.gateway.test_gateway_execution import EXECUTE, callback_token, gql
from tests.support.gateway import Stack, gateway_stack, replica
from tests.support.playbooks import LINEAR, register
from tests.support.sse import SseClient
from tests.support.wait import eventually

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]


async def _is(value: Any) -> Any:
    return value


@pytest.fixture
async def pair(db_dsn: str, nats_url: str) -> AsyncIterator[tuple[Stack, Gateway, str]]:
    async with gateway_stack(db_dsn, nats_url) as st, replica(st, db_dsn, nats_url) as (gw_b, url_b):
        await register(st.api, LINEAR)
        for gw in (st.gw, gw_b):
            await eventually(lambda gw=gw: _is(gw.store.index.ready), what="request index caught up")
        yield st, gw_b, url_b


async def test_request_index_follows_the_other_replica(pair: tuple[Stack, Gateway, str]) -> None:
    st, gw_b, _ = pair
    rid, eid, cid = str(uuid.uuid4()), str(7_000_000_000 + int(time.time())), f"idx-{RUN}"
    entry = {"client_id": cid, "session_hash": "h", "execution_id": eid, "created_at": int(time.time())}
    await st.gw.store.add(rid, entry)
    assert st.gw.store.index.clients(eid) == [cid]  # write-through on the replica that added it
    await eventually(
        lambda: _is(gw_b.store.index.clients(eid) == [cid]), what="replica B indexed the request"
    )
    listings = gw_b.nats.listings
    assert await gw_b.store.clients_of(eid) == [cid]
    assert gw_b.nats.listings == listings  # answered from memory, no K/V listing
    await st.gw.store.delete(rid, entry)
    await eventually(lambda: _is(gw_b.store.index.clients(eid) == []), what="replica B dropped the request")


async def test_callback_on_replica_a_reaches_sse_client_on_replica_b(
    pair: tuple[Stack, Gateway, str],
) -> None:
    st, gw_b, url_b = pair
    token = await st.login(role="admin")
    cid = f"xr-{RUN}"
    async with SseClient(st.http, f"{url_b}/events?session_token={token}&client_id={cid}") as events:
        await events.wait_for(lambda f: f.get("event") == "message", what="init on B")
        out = await gql(st, token, EXECUTE, name="tests/linear", vars={"n": 1}, cid=cid)  # started through A
        assert "errors" not in out, out
        run = out["data"]["executePlaybook"]
        assert cid not in st.gw.registry.by_client and cid in gw_b.registry.by_client
        tok = await callback_token(st, run["executionId"])
        body = {"request_id": run["requestId"], "execution_id": run["executionId"], "data": {"v": 1}}
        status, reply = await st.post(
            "/api/internal/callback/async", json=body, headers={"Authorization": f"Bearer {tok}"}
        )
        assert status == 200 and reply == {"status": "delivered"}
        result = await events.wait_for(lambda f: f.get("event") == "playbook/result", what="result on B")
        assert result["data"]["params"]["data"] == {"v": 1}
        assert result["data"]["params"]["requestId"] == run["requestId"]


async def test_nats_outage_callbacks_503_sessions_through_server(db_dsn: str, own_nats: EmbeddedNats) -> None:
    url = own_nats.url
    async with gateway_stack(db_dsn, url) as st:
        await register(st.api, LINEAR)
        token = await st.login(role="admin")
        cid = f"down-{RUN}"
        out = await gql(st, token, EXECUTE, name="tests/linear", vars={"n": 1}, cid=cid)
        run = out["data"]["executePlaybook"]
        tok = await callback_token(st, run["executionId"])
        own_nats.stop()
        await eventually(lambda: _is(not st.gw.nats.ready), what="gateway sees NATS down")
        body = {"request_id": run["requestId"], "execution_id": run["executionId"], "data": {}}
        status, reply = await st.post(
            "/api/internal/callback/async", json=body, headers={"Authorization": f"Bearer {tok}"}
        )
        assert status == 503, reply
        before = st.gw.server.calls
        status, v = await st.post("/api/auth/validate", json={"session_token": token})
        assert status == 200 and v["valid"] is True
        assert st.gw.server.calls == before + 1  # the cache is down: the server answered
        out = await gql(st, token, EXECUTE, name="tests/linear", vars={}, cid=cid)
        assert out["errors"][0]["message"] == "Async result delivery unavailable"
