"""Event ingestion: idempotency, validation, orchestration triggers, batches (server-contract §6)."""

from __future__ import annotations

import asyncio
import json

import nats
import pytest

from app.loops import relay_loop
from tests.support.playbooks import FANOUT, LINEAR, register
from tests.support.server import Api, make_settings, running_api
from tests.support.wait import eventually

pytestmark = pytest.mark.integration


async def _command(api: Api, eid: str, step: str) -> tuple[int, int]:
    row = await api.deps.pool.fetchrow(
        "SELECT command_id, event_id FROM command WHERE execution_id = $1 AND step_name = $2 "
        "ORDER BY created_at DESC LIMIT 1",
        int(eid),
        step,
    )
    assert row is not None, step
    return int(row["command_id"]), int(row["event_id"])


def _completed(eid: str, step: str, cid: int, event_id: int, data: dict | None = None) -> dict:  # type: ignore[type-arg]
    return {
        "execution_id": eid,
        "step": step,
        "event_type": "command.completed",
        "status": "success",
        "event_id": event_id,
        "worker_id": "w",
        "meta": {"command_id": cid},
        "payload": {"command_id": str(cid), "result": data or {}},
    }


async def test_same_completion_posted_100_times_concurrently(db_dsn: str) -> None:
    async with running_api(make_settings(db_dsn)) as api:
        await register(api, LINEAR)
        _, started = await api.post("/api/execute", json={"path": "tests/linear"})
        eid = started["execution_id"]
        cid, _ = await _command(api, eid, "start")
        ev_id = api.deps.ids.next_id()
        body = _completed(eid, "start", cid, ev_id, {"double": 6})
        results = await asyncio.gather(*(api.post("/api/events", json=body) for _ in range(100)))
        assert all(s == 200 for s, _ in results)
        assert {b["event_id"] for _, b in results} == {ev_id}
        assert sum(b["commands_generated"] for _, b in results) == 1
        stored = await api.deps.pool.fetchval(
            "SELECT count(*) FROM event WHERE execution_id = $1 AND event_type = 'command.completed'",
            int(eid),
        )
        assert stored == 1
        issued = await api.deps.pool.fetchval(
            "SELECT count(*) FROM command WHERE execution_id = $1 AND step_name = 'add'", int(eid)
        )
        assert issued == 1
        # a re-sent completion with a different event id is de-duplicated on the command id
        status, again = await api.post(
            "/api/events", json=_completed(eid, "start", cid, api.deps.ids.next_id())
        )
        assert status == 200 and again["event_id"] == ev_id and again["commands_generated"] == 0


async def test_parallel_branches_completing_together_issue_the_join_once(db_dsn: str) -> None:
    async with running_api(make_settings(db_dsn, POSTGRES_MAX_CONNECTIONS="20")) as api:
        await register(api, FANOUT)
        for _ in range(5):
            _, started = await api.post("/api/execute", json={"path": "tests/fanout"})
            eid = started["execution_id"]
            cid, _ = await _command(api, eid, "start")
            await api.post("/api/events", json=_completed(eid, "start", cid, api.deps.ids.next_id()))
            (ca, _), (cb, _) = await _command(api, eid, "a"), await _command(api, eid, "b")
            res = await asyncio.gather(
                api.post("/api/events", json=_completed(eid, "a", ca, api.deps.ids.next_id(), {"v": "a"})),
                api.post("/api/events", json=_completed(eid, "b", cb, api.deps.ids.next_id(), {"v": "b"})),
            )
            assert sum(b["commands_generated"] for _, b in res) == 1
            joins = await api.deps.pool.fetchval(
                "SELECT count(*) FROM command WHERE execution_id = $1 AND step_name = 'join'", int(eid)
            )
            assert joins == 1


async def test_validation_and_unknown_execution(db_dsn: str) -> None:
    async with running_api(make_settings(db_dsn)) as api:
        status, body = await api.post("/api/events", json={"execution_id": "999", "event_type": "x"})
        assert status == 404 and body["error"] == "execution not found: 999"
        status, body = await api.post("/api/events", json={"event_type": "x"})
        assert status == 422 and body["detail"][0]["loc"] == ["body", "execution_id"]
        status, body = await api.post("/api/events", json={"execution_id": "abc", "event_type": "x"})
        assert status == 422
        status, body = await api.post("/api/events/batch", json={"execution_id": 1, "events": [{}] * 257})
        assert status == 422 and "256" in body["error"]
        count = await api.deps.pool.fetchval("SELECT count(*) FROM event")
        assert count == 0


async def test_status_canonicalisation_keeps_producer_status(db_dsn: str) -> None:
    async with running_api(make_settings(db_dsn)) as api:
        await register(api, LINEAR)
        _, started = await api.post("/api/execute", json={"path": "tests/linear"})
        eid = started["execution_id"]
        cid, _ = await _command(api, eid, "start")
        status, body = await api.post(
            "/api/events",
            json={
                "execution_id": int(eid),
                "node_name": "start",
                "name": "command.completed",
                "status": "error",
                "context": {"command_id": cid, "error": "bad things"},
                "worker_id": "w",
            },
        )
        assert status == 200
        row = await api.deps.pool.fetchrow(
            "SELECT status, meta, result, error FROM event WHERE event_id = $1", body["event_id"]
        )
        assert row["status"] == "FAILED" and row["meta"]["producer_status"] == "error"
        assert row["result"] == {"status": "FAILED", "context": {"command_id": cid, "error": "bad things"}}
        _, st = await api.get(f"/api/executions/{eid}/status")
        assert st["status"] == "FAILED"  # an error status on command.completed fails the step
        # late events for a terminal execution are recorded, not orchestrated
        status, late = await api.post(
            "/api/events", json=_completed(eid, "start", cid + 1, api.deps.ids.next_id())
        )
        assert status == 200 and late["commands_generated"] == 0


async def test_batch_with_idempotency_key(db_dsn: str) -> None:
    async with running_api(make_settings(db_dsn)) as api:
        await register(api, LINEAR)
        _, started = await api.post("/api/execute", json={"path": "tests/linear"})
        eid = started["execution_id"]
        cid, _ = await _command(api, eid, "start")
        body = {
            "execution_id": eid,
            "worker_id": "pw",
            "events": [
                {
                    "step": "start",
                    "name": "command.started",
                    "payload": {"command_id": cid, "worker_id": "pw"},
                    "meta": {"command_id": cid},
                },
                {
                    "step": "start",
                    "name": "step.enter",
                    "payload": {"status": "started"},
                    "meta": {"command_id": cid},
                },
            ],
        }
        headers = {"Idempotency-Key": "pw:1:abc"}
        status, first = await api.post("/api/events/batch", json=body, headers=headers)
        assert status == 200 and first["duplicate"] is False and len(first["event_ids"]) == 2
        status, second = await api.post("/api/events/batch", json=body, headers=headers)
        assert status == 200 and second["duplicate"] is True and second["event_ids"] == first["event_ids"]
        assert second["request_id"] == first["request_id"]
        n = await api.deps.pool.fetchval("SELECT count(*) FROM event WHERE execution_id = $1", int(eid))
        assert n == 5  # playbook_started, step.enter, command.issued + the batch's two events


async def test_commit_before_publish_survives_a_server_restart(db_dsn: str, nats_url: str) -> None:
    """Commands committed while no relay ran (a crash between commit and publish) are published later."""
    settings = make_settings(db_dsn, nats_url)
    async with running_api(settings) as api:  # no relay loop: nothing gets published
        await register(api, LINEAR)
        _, started = await api.post("/api/execute", json={"path": "tests/linear"})
        pending = await api.deps.pool.fetchval(
            "SELECT count(*) FROM outbox WHERE kind = 'command' AND status = 'PENDING'"
        )
        assert pending == 1
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    sub = await js.pull_subscribe(
        f"noetl.commands.shared.{started['execution_id']}", durable=None, stream="NOETL_COMMANDS"
    )
    try:
        async with running_api(settings, [("relay", relay_loop)]) as api2:  # the restarted server

            async def got() -> list:  # type: ignore[type-arg]
                try:
                    return await sub.fetch(1, timeout=0.5)
                except Exception:
                    return []

            msgs = await eventually(got, timeout=10, what="notification after restart")
            note = json.loads(msgs[0].data)
            assert note["execution_id"] == int(started["execution_id"]) and note["step"] == "start"
            assert isinstance(note["event_id"], int) and isinstance(note["command_id"], int)
            assert note["execution_pool"] == "shared" and note["server_url"] == settings.server.server_url
            assert msgs[0].headers["Nats-Msg-Id"] == str(note["event_id"])
            await eventually(lambda: _published(api2), timeout=5, what="row marked published")
    finally:
        await nc.close()


async def _published(api: Api) -> bool:
    return bool(
        await api.deps.pool.fetchval(
            "SELECT count(*) = 0 FROM outbox WHERE kind = 'command' AND status <> 'PUBLISHED'"
        )
    )
