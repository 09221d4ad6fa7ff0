"""Claim policy (server-contract §5.4, §5.5): leases, reclaims, attempt limit, 409 codes."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.playbooks import LINEAR, register
from tests.support.server import Api, make_settings, running_api

pytestmark = pytest.mark.integration


async def _started(api: Api) -> tuple[str, int]:
    await register(api, LINEAR)
    _, started = await api.post("/api/execute", json={"path": "tests/linear"})
    ev = await api.deps.pool.fetchval(
        "SELECT event_id FROM command WHERE execution_id = $1", int(started["execution_id"])
    )
    return started["execution_id"], int(ev)


async def test_claim_shapes_and_idempotence(db_dsn: str) -> None:
    async with running_api(make_settings(db_dsn)) as api:
        eid, ev = await _started(api)
        status, cmd = await api.get(f"/api/commands/{ev}")
        assert status == 200 and set(cmd) == {
            "execution_id",
            "node_id",
            "node_name",
            "action",
            "context",
            "meta",
        }
        status, body = await api.post(f"/api/commands/{ev}/claim", json={"worker_id": "w1"})
        assert status == 200 and body["status"] == "ok" and body["event_id"] == ev
        assert (
            body["execution_id"] == int(eid) and body["node_name"] == "start" and body["action"] == "python"
        )
        assert {"tool_config", "args", "input", "render_context", "spec"} <= set(body["context"])
        assert isinstance(body["meta"]["command_id"], int) and body["meta"]["attempt"] == 1
        # same worker, still CLAIMED: idempotent 200
        assert (await api.post(f"/api/commands/{ev}/claim", json={"worker_id": "w1"}))[0] == 200
        # another worker while the lease is valid: 409 active_claim with Retry-After
        status, body, headers = await api.request(
            "POST", f"/api/commands/{ev}/claim", json={"worker_id": "w2"}
        )
        assert (
            status == 409 and body["detail"]["code"] == "active_claim" and "another worker" in body["error"]
        )
        assert headers["Retry-After"] == "2"
        # started on w1: a re-claim by w1 is refused (it would run twice)
        cid = await api.deps.pool.fetchval("SELECT command_id FROM command WHERE event_id = $1", ev)
        status, _ = await api.post(
            "/api/events",
            json={
                "execution_id": eid,
                "step": "start",
                "event_type": "command.started",
                "worker_id": "w1",
                "meta": {"command_id": cid},
            },
        )
        assert status == 200
        status, body = await api.post(f"/api/commands/{ev}/claim", json={"worker_id": "w1"})
        assert status == 409 and body["detail"]["code"] == "active_claim"
        claimed = await api.deps.pool.fetchval(
            "SELECT count(*) FROM event WHERE execution_id = $1 AND event_type = 'command.claimed'", int(eid)
        )
        assert claimed == 1


async def test_bad_requests(db_dsn: str) -> None:
    async with running_api(make_settings(db_dsn)) as api:
        assert (await api.post("/api/commands/abc/claim", json={"worker_id": "w"}))[0] == 400
        status, body = await api.post("/api/commands/123/claim", json={"worker_id": "w"})
        assert status == 404 and body["error"] == "command not found: 123"
        _, ev = await _started(api)
        assert (await api.post(f"/api/commands/{ev}/claim", json={}))[0] == 422
        status, body, _ = await api.request(
            "POST", f"/api/commands/{ev}/claim", data="{bad", headers={"Content-Type": "application/json"}
        )
        assert status == 400
        status, body, _ = await api.request(
            "POST",
            f"/api/commands/{ev}/claim",
            data='{"worker_id": "w"}',
            headers={"Content-Type": "text/plain"},
        )
        assert status == 415


async def test_reclaim_after_lease_and_stale_heartbeat(db_dsn: str) -> None:
    async with running_api(make_settings(db_dsn, NOETL_COMMAND_CLAIM_LEASE_SECONDS="0")) as api:
        eid, ev = await _started(api)
        await api.post("/api/worker/pool/register", json={"name": "w1"})
        assert (await api.post(f"/api/commands/{ev}/claim", json={"worker_id": "w1"}))[0] == 200
        # w1 is healthy (fresh heartbeat) and under the hard timeout: keep
        status, body = await api.post(f"/api/commands/{ev}/claim", json={"worker_id": "w2"})
        assert status == 409 and body["detail"]["code"] == "active_claim"
        await api.deps.pool.execute(
            "UPDATE runtime SET heartbeat = now() - interval '5 minutes' WHERE name = 'w1'"
        )
        status, body = await api.post(f"/api/commands/{ev}/claim", json={"worker_id": "w2"})
        assert status == 200 and body["reclaimed"] is True and body["meta"]["attempt"] == 2
        meta = await api.deps.pool.fetchval(
            "SELECT meta FROM event WHERE execution_id = $1 AND event_type = 'command.claimed' "
            "ORDER BY seq DESC LIMIT 1",
            int(eid),
        )
        assert meta["reclaimed_reason"] == "worker_heartbeat_stale" and meta["reclaimed_from_worker"] == "w1"


async def test_attempt_limit_fails_the_command(db_dsn: str) -> None:
    async with running_api(make_settings(db_dsn, NOETL_COMMAND_CLAIM_LEASE_SECONDS="0")) as api:
        eid, ev = await _started(api)
        for i, worker in enumerate(["w1", "w2", "w3"]):
            status, body = await api.post(f"/api/commands/{ev}/claim", json={"worker_id": worker})
            assert status == 200, (i, body)
        status, body = await api.post(f"/api/commands/{ev}/claim", json={"worker_id": "w4"})
        assert status == 409 and body["detail"]["code"] == "already_terminal"
        _, st = await api.get(f"/api/executions/{eid}/status")
        assert st["status"] == "FAILED"
        row = await api.deps.pool.fetchrow("SELECT status, error FROM command WHERE event_id = $1", ev)
        assert row["status"] == "FAILED" and row["error"] == "worker lost: max attempts exceeded"


async def test_claim_for_cancelled_execution(db_dsn: str) -> None:
    async with running_api(make_settings(db_dsn)) as api:
        eid, ev = await _started(api)
        status, out = await api.post(f"/api/executions/{eid}/cancel", json={"cascade": True})
        assert status == 200 and out["status"] == "cancelled" and out["cancelled_executions"] == [eid]
        # the PENDING command was cancelled with the execution
        status, body = await api.post(f"/api/commands/{ev}/claim", json={"worker_id": "w1"})
        assert status == 409 and body["detail"]["code"] in ("execution_cancelled", "already_terminal")
        await api.deps.pool.execute("UPDATE command SET status = 'PENDING' WHERE event_id = $1", ev)
        status, body = await api.post(f"/api/commands/{ev}/claim", json={"worker_id": "w1"})
        assert status == 409 and body["detail"]["code"] == "execution_cancelled"
        status, chk = await api.get(f"/api/executions/{eid}/cancellation-check")
        assert (
            chk["cancelled"] is True
            and chk["is_cancelled"] is True
            and chk["event_type"] == "execution.cancelled"
        )
        status, again = await api.post(f"/api/executions/{eid}/cancel", json={})
        assert (
            status == 200 and again["status"] == "already_completed" and again["cancelled_executions"] == []
        )


async def test_concurrent_claims_have_one_winner(db_dsn: str) -> None:
    async with running_api(make_settings(db_dsn)) as api:
        _, ev = await _started(api)
        results = await asyncio.gather(
            *(api.post(f"/api/commands/{ev}/claim", json={"worker_id": f"w{i}"}) for i in range(20))
        )
        assert sorted(s for s, _ in results).count(200) == 1
        assert all(b["detail"]["code"] == "active_claim" for s, b in results if s == 409)
