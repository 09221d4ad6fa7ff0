"""The one-statement command projection of ingested events equals projecting them one by one, in order."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.services import events, events_one
from tests.support.playbooks import LINEAR, register
from tests.support.server import Api, make_settings, running_api

pytestmark = pytest.mark.integration

# Each scenario: events posted first (one by one), then one batch; all about the `start` command.
SCENARIOS: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {
    "started": ([], [{"event_type": "command.started"}]),
    "call.done then completed": (
        [],
        [
            {"event_type": "call.done", "payload": {"result": {"x": 1}}},
            {"event_type": "command.completed", "status": "success", "payload": {"result": {"x": 1}}},
        ],
    ),
    "started, call.done, completed": (
        [],
        [
            {"event_type": "command.started"},
            {"event_type": "call.done"},
            {"event_type": "command.completed", "status": "success", "payload": {"result": {"y": 2}}},
        ],
    ),
    "completed reporting an error": (
        [],
        [{"event_type": "command.completed", "status": "error", "payload": {"error": "boom"}}],
    ),
    "two touches": ([], [{"event_type": "step.progress"}, {"event_type": "step.progress"}]),
    "claimed by another worker": ([], [{"event_type": "command.claimed", "worker_id": "w2"}]),
    "started after completion": (
        [{"event_type": "command.completed", "status": "success", "payload": {"result": {}}}],
        [{"event_type": "command.started"}, {"event_type": "step.progress"}],
    ),
    "started alone after completion": (
        [{"event_type": "command.completed", "status": "success", "payload": {"result": {}}}],
        [{"event_type": "command.started"}],
    ),
    "completed then touch": (
        [],
        [{"event_type": "command.completed", "status": "success"}, {"event_type": "call.done"}],
    ),
}


async def _run(api: Api, before: list[dict[str, Any]], batch: list[dict[str, Any]]) -> dict[str, Any]:
    _, started = await api.post("/api/execute", json={"path": "tests/linear"})
    eid = int(started["execution_id"])
    cid = await api.deps.pool.fetchval(
        "SELECT command_id FROM command WHERE execution_id = $1 AND step_name = 'start'", eid
    )

    def item(ev: dict[str, Any]) -> dict[str, Any]:
        payload = {"command_id": str(cid), **(ev.get("payload") or {})}
        return {"step": "start", "worker_id": "w1", **ev, "meta": {"command_id": cid}, "payload": payload}

    for ev in before:
        status, body = await api.post("/api/events", json={"execution_id": str(eid), **item(ev)})
        assert status == 200, body
    items = [{**item(ev), "event_id": api.deps.ids.next_id()} for ev in batch]
    status, body = await api.post(
        "/api/events/batch", json={"execution_id": str(eid), "worker_id": "w1", "events": items}
    )
    assert status == 200, body
    position = {i["event_id"]: n for n, i in enumerate(items)}
    row = await api.deps.pool.fetchrow(
        "SELECT status, worker_id, result, error, started_at IS NOT NULL AS started, "
        "completed_at IS NOT NULL AS completed, claimed_at IS NOT NULL AS claimed, latest_event_id "
        "FROM command WHERE execution_id = $1 AND command_id = $2",
        eid,
        cid,
    )
    out = dict(row)
    out["latest_event_id"] = position.get(out["latest_event_id"], "earlier")
    return out


async def test_batch_projection_matches_row_by_row(db_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_api(make_settings(db_dsn)) as api:
        await register(api, LINEAR)
        one_statement = {name: await _run(api, *sc) for name, sc in SCENARIOS.items()}
        monkeypatch.setattr(events, "_collapsible", lambda updates: False)
        row_by_row = {name: await _run(api, *sc) for name, sc in SCENARIOS.items()}
    assert one_statement == row_by_row
    # and the expected absolute outcomes of a few
    assert one_statement["call.done then completed"]["status"] == "COMPLETED"
    assert one_statement["call.done then completed"]["result"] == {"x": 1}
    assert one_statement["call.done then completed"]["latest_event_id"] == 1
    assert one_statement["completed reporting an error"]["status"] == "FAILED"
    assert one_statement["completed reporting an error"]["error"] == "boom"
    assert one_statement["started"]["status"] == "RUNNING" and one_statement["started"]["started"]
    assert one_statement["claimed by another worker"]["worker_id"] == "w2"
    assert one_statement["started after completion"]["status"] == "COMPLETED"
    assert one_statement["started after completion"]["latest_event_id"] == 1
    assert one_statement["started alone after completion"]["latest_event_id"] == "earlier"
    assert one_statement["completed then touch"]["latest_event_id"] == 1
    assert one_statement["completed then touch"]["status"] == "COMPLETED"


async def test_mirror_rows_built_in_sql_equal_the_python_envelope(db_dsn: str) -> None:
    from datetime import datetime

    from app.services.eventlog import mirror_envelope, mirror_subject

    async with running_api(make_settings(db_dsn)) as api:
        await register(api, LINEAR)
        _, started = await api.post("/api/execute", json={"path": "tests/linear"})
        eid = int(started["execution_id"])
        stamps = [
            "2026-12-04T10:00:00Z",
            "2026-12-04T10:00:00.120Z",
            "2026-12-04T10:00:00.123456Z",
            "2026-12-04T10:00:00.000100Z",
            None,
        ]
        items = [
            {
                "step": "start",
                "event_type": "step.progress",
                "event_id": api.deps.ids.next_id(),
                "payload": {"i": n, "nested": {"a": [1, 2.5, None, "x"]}},
                "meta": {"k": "v", "n": n},
                **({"created_at": ts} if ts else {}),
            }
            for n, ts in enumerate(stamps)
        ]
        status, body = await api.post(
            "/api/events/batch", json={"execution_id": str(eid), "worker_id": "w1", "events": items}
        )
        assert status == 200, body
        rows = await api.deps.pool.fetch(
            "SELECT e.*, o.payload AS mirror, o.subject AS mirror_subject, o.kind AS mirror_kind, "
            "o.payload_codec AS mirror_codec FROM event e JOIN outbox o ON o.event_id = e.event_id "
            "AND o.kind = 'event' WHERE e.execution_id = $1 AND e.event_id = ANY($2::bigint[]) ORDER BY o.outbox_id",
            eid,
            [i["event_id"] for i in items],
        )
        assert [r["event_id"] for r in rows] == [i["event_id"] for i in items]  # one each, in order
        for r in rows:
            row = dict(r)
            mirror = row.pop("mirror")
            ingest_time = mirror["ingest_time"]
            assert datetime.fromisoformat(ingest_time.replace("Z", "+00:00"))
            assert mirror == mirror_envelope(row, datetime.fromisoformat(ingest_time.replace("Z", "+00:00")))
            assert row["mirror_subject"] == mirror_subject(api.deps.settings, row)
            assert (row["mirror_kind"], row["mirror_codec"]) == ("event", "json")
        assert [r["mirror"]["created_at"] for r in rows[:4]] == [
            "2026-12-04T10:00:00Z",
            "2026-12-04T10:00:00.120Z",
            "2026-12-04T10:00:00.123456Z",
            "2026-12-04T10:00:00.000100Z",
        ]


SINGLE_POSTS: dict[str, list[dict[str, Any]]] = {
    "claimed, started, call.done": [
        {"event_type": "command.claimed", "worker_id": "w1"},
        {"event_type": "command.started"},
        {"event_type": "call.done", "payload": {"result": {"z": 3}}},
    ],
    "claimed twice by the same worker, started twice": [
        {"event_type": "command.claimed", "worker_id": "w1"},
        {"event_type": "command.claimed", "worker_id": "w1"},
        {"event_type": "command.started"},
        {"event_type": "command.started"},
    ],
    "claimed by another worker": [
        {"event_type": "command.claimed", "worker_id": "w1"},
        {"event_type": "command.claimed", "worker_id": "w2"},
    ],
    "progress with a producer timestamp": [
        {"event_type": "step.progress", "created_at": "2026-12-04T10:00:00.250Z"},
        {"event_type": "step.progress", "status": "custom"},
    ],
}


async def _singles(api: Api, posts: list[dict[str, Any]]) -> dict[str, Any]:
    from datetime import datetime

    from app.services.eventlog import mirror_envelope

    _, started = await api.post("/api/execute", json={"path": "tests/linear"})
    eid = int(started["execution_id"])
    cid = await api.deps.pool.fetchval(
        "SELECT command_id FROM command WHERE execution_id = $1 AND step_name = 'start'", eid
    )
    answers, ids = [], []
    for ev in posts:
        ev_id = api.deps.ids.next_id()
        ids.append(ev_id)
        body = {
            "execution_id": str(eid),
            "step": "start",
            "worker_id": "w1",
            "event_id": ev_id,
            **ev,
            "meta": {"command_id": cid},
            "payload": {"command_id": str(cid), **(ev.get("payload") or {})},
        }
        status, answer = await api.post("/api/events", json=body)
        code = answer.get("detail", {}).get("code") if status != 200 else None
        answers.append(
            (
                status,
                code,
                ids.index(answer["event_id"])
                if status == 200 and answer["event_id"] in ids
                else answer.get("event_id")
                if status == 200
                else None,
            )
        )
    events = await api.deps.pool.fetch(
        "SELECT e.*, o.payload AS mirror FROM event e LEFT JOIN outbox o ON o.event_id = e.event_id "
        "AND o.kind = 'event' WHERE e.execution_id = $1 AND e.event_id = ANY($2::bigint[]) ORDER BY e.seq",
        eid,
        ids,
    )
    stored = []
    for r in events:
        row = dict(r)
        mirror = row.pop("mirror")
        assert mirror is not None
        now = datetime.fromisoformat(mirror["ingest_time"].replace("Z", "+00:00"))
        assert mirror == mirror_envelope(row, now)
        # the command id differs between runs: compare the rest
        shape = json.loads(
            json.dumps([row["meta"], row["result"]]).replace(f'"{cid}"', "0").replace(str(cid), "0")
        )
        stored.append((ids.index(row["event_id"]), row["event_type"], row["status"], row["worker_id"], shape))
    cmd = await api.deps.pool.fetchrow(
        "SELECT status, worker_id, started_at IS NOT NULL AS started, claimed_at IS NOT NULL AS claimed, "
        "latest_event_id FROM command WHERE execution_id = $1 AND command_id = $2",
        eid,
        cid,
    )
    out = dict(cmd)
    out["latest_event_id"] = ids.index(out["latest_event_id"]) if out["latest_event_id"] in ids else "earlier"
    return {"answers": answers, "stored": stored, "command": out}


async def test_single_event_fast_path_matches_the_general_path(
    db_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_api(make_settings(db_dsn)) as api:
        await register(api, LINEAR)
        fast = {name: await _singles(api, posts) for name, posts in SINGLE_POSTS.items()}
        calls = []
        real = events_one.ingest_one

        async def general(*args: Any, **kw: Any) -> None:
            calls.append(1)
            return None

        monkeypatch.setattr(events_one, "ingest_one", general)
        slow = {name: await _singles(api, posts) for name, posts in SINGLE_POSTS.items()}
        assert calls and real is not general
    assert fast == slow
    same = fast["claimed twice by the same worker, started twice"]
    assert same["answers"] == [(200, None, 0), (200, None, 0), (200, None, 2), (200, None, 2)]
    assert len(same["stored"]) == 2 and same["command"]["status"] == "RUNNING"
    assert fast["claimed by another worker"]["answers"][1][:2] == (409, "active_claim")
    assert fast["claimed, started, call.done"]["command"]["latest_event_id"] == 2
