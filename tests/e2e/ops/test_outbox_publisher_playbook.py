"""system/outbox_publisher (server-contract §14.4) run by a real system-pool worker through /api/internal/outbox/*."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import nats
import pytest

from app.devstack.nats import EmbeddedNats
from app.loops import SERVER_LOOPS
from tests.e2e.ops.conftest import MakeOps
from tests.support.playbooks import LINEAR, register, wait_terminal
from tests.support.real_worker import running_worker, worker_settings
from tests.support.server import Api, running_api

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[3]
PUBLISHER = (ROOT / "app/playbooks/system/outbox_publisher.yaml").read_text()
TOKEN = "0b5e" * 16


async def _mirrored(nats_url: str, execution_id: str) -> list[int]:
    """Nats-Msg-Ids of every message on the event mirror for one execution."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(f"noetl.events.*.*.{execution_id}.*", ordered_consumer=True)
        ids: list[int] = []
        while True:
            try:
                msg = await sub.next_msg(timeout=1.0)
            except nats.errors.TimeoutError:
                break
            ids.append(int((msg.headers or {})["Nats-Msg-Id"]))
            assert json.loads(msg.data)["event_id"] is not None
        await sub.unsubscribe()
        return ids
    finally:
        await nc.close()


async def _run_publisher(api: Api, **workload: object) -> dict[str, object]:
    payload = {"server_url": api.url, "kind": "event", "batch_size": 100, "max_batches": 5, **workload}
    status, res = await api.post(
        "/api/execute",
        json={"path": "system/outbox_publisher", "payload": payload, "execution_pool": "system"},
    )
    assert status == 200, res
    try:
        return await wait_terminal(api, res["execution_id"], timeout=60)
    except AssertionError:
        _, events = await api.get(
            f"/api/executions/{res['execution_id']}/events", params={"page_size": "200"}
        )
        trail = [
            (e.get("event_type"), e.get("node_name"), e.get("status"), e.get("error"))
            for e in events["events"]
        ]
        raise AssertionError(f"publisher did not finish: {trail}") from None


async def test_publisher_playbook_publishes_the_mirror_marks_rows_and_absorbs_duplicates(
    db_dsn: str, own_nats: EmbeddedNats, ops_settings: MakeOps, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The in-process relay dispatches commands only; the event mirror is left to the playbook.
    settings = ops_settings(
        db_dsn, own_nats.url, NOETL_INTERNAL_API_TOKEN=TOKEN, NOETL_OUTBOX_RELAY_KINDS="command"
    )
    monkeypatch.setenv("NOETL_INTERNAL_API_TOKEN", TOKEN)
    async with running_api(settings, SERVER_LOOPS) as api:
        ws = worker_settings(
            db_dsn,
            own_nats.url,
            api.url,
            WORKER_POOL_NAME="system",
            NOETL_FEED_FILTER_SUBJECT="noetl.commands.system.>",
            NOETL_KEYCHAIN_ENV_VARS="NOETL_INTERNAL_API_TOKEN",
        )
        async with running_worker(ws):
            await register(api, LINEAR)
            await register(api, PUBLISHER)
            _, started = await api.post(
                "/api/execute", json={"path": "tests/linear", "execution_pool": "system"}
            )
            linear = started["execution_id"]
            assert (await wait_terminal(api, linear))["status"] == "COMPLETED"
            conn = await asyncpg.connect(db_dsn, server_settings={"search_path": "noetl"})
            try:
                events = {
                    r["event_id"]
                    for r in await conn.fetch(
                        "SELECT event_id FROM event WHERE execution_id = $1", int(linear)
                    )
                }
                pending = await conn.fetchval(
                    "SELECT count(*) FROM outbox WHERE kind = 'event' AND execution_id = $1 AND status = 'PENDING'",
                    int(linear),
                )
                assert pending == len(events) > 0  # nothing but the playbook publishes the mirror
                assert await _mirrored(own_nats.url, linear) == []

                # A row no stream captures: its publish fails and the playbook marks it FAILED with backoff.
                await conn.execute(
                    "INSERT INTO outbox (execution_id, event_id, kind, subject, payload, payload_codec)"
                    " VALUES (1, 424242, 'event', 'nowhere.to.go', '{\"event_id\": 424242}', 'json')"
                )

                run = await _run_publisher(api)
                assert run["status"] == "COMPLETED", run
                rows = await conn.fetch(
                    "SELECT status, attempts FROM outbox WHERE kind = 'event' AND execution_id = $1",
                    int(linear),
                )
                assert {r["status"] for r in rows} == {"PUBLISHED"}
                published = await _mirrored(own_nats.url, linear)
                assert sorted(published) == sorted(events)  # every event once
                bad = await conn.fetchrow(
                    "SELECT status, attempts, last_error, available_at > updated_at AS later FROM outbox WHERE event_id = 424242"
                )
                assert bad["status"] == "FAILED" and bad["attempts"] == 1 and bad["later"]
                assert bad["last_error"]

                # A relay that died after publishing and before marking: the rows are claimed and published
                # again, and JetStream drops the duplicates by Nats-Msg-Id.
                await conn.execute(
                    "UPDATE outbox SET status = 'PENDING', published_at = NULL"
                    " WHERE kind = 'event' AND execution_id = $1",
                    int(linear),
                )
                again = await _run_publisher(api)
                assert again["status"] == "COMPLETED", again
                assert sorted(await _mirrored(own_nats.url, linear)) == sorted(events)
                statuses = await conn.fetch(
                    "SELECT DISTINCT status FROM outbox WHERE kind = 'event' AND execution_id = $1",
                    int(linear),
                )
                assert [r["status"] for r in statuses] == ["PUBLISHED"]
            finally:
                await conn.close()


async def test_claim_route_filters_by_kind(db_dsn: str, ops_settings: MakeOps) -> None:
    settings = ops_settings(db_dsn, None, NOETL_INTERNAL_API_TOKEN=TOKEN, NOETL_OUTBOX_RELAY_ENABLED="false")
    async with running_api(settings, SERVER_LOOPS) as api:
        conn = await asyncpg.connect(db_dsn, server_settings={"search_path": "noetl"})
        try:
            await conn.execute(
                "INSERT INTO outbox (execution_id, event_id, kind, subject, payload) VALUES"
                " (1, 1, 'event', 's.e', '{}'), (1, 2, 'command', 's.c', '{}'), (1, 3, 'event', 's.e', '{}')"
            )
        finally:
            await conn.close()
        auth = {"Authorization": f"Bearer {TOKEN}"}
        status, res = await api.post("/api/internal/outbox/claim?limit=10&kind=command", headers=auth)
        assert status == 200 and [r["event_id"] for r in res["rows"]] == [2]
        status, res = await api.post("/api/internal/outbox/claim?limit=10", headers=auth)
        assert status == 200 and sorted(r["event_id"] for r in res["rows"]) == [1, 3]


async def test_pending_count_saturates_at_its_cap(db_dsn: str, ops_settings: MakeOps) -> None:
    settings = ops_settings(
        db_dsn,
        None,
        NOETL_INTERNAL_API_TOKEN=TOKEN,
        NOETL_OUTBOX_RELAY_ENABLED="false",
        NOETL_OUTBOX_PENDING_COUNT_CAP="25",
    )
    async with running_api(settings, SERVER_LOOPS) as api:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        conn = await asyncpg.connect(db_dsn, server_settings={"search_path": "noetl"})
        try:
            await conn.execute(
                "INSERT INTO outbox (execution_id, event_id, kind, subject, payload)"
                " SELECT 1, g, 'event', 's', '{}' FROM generate_series(1, 20) g"
            )
            assert (await api.get("/api/internal/outbox/pending-count", headers=auth))[1] == {"pending": 20}
            await conn.execute(
                "INSERT INTO outbox (execution_id, event_id, kind, subject, payload)"
                " SELECT 1, g, 'event', 's', '{}' FROM generate_series(21, 60) g"
            )
            assert (await api.get("/api/internal/outbox/pending-count", headers=auth))[1] == {"pending": 25}
        finally:
            await conn.close()
