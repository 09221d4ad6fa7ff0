"""Outbox routes and relay semantics; the runtime registry routes."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import nats
import pytest

from app import outbox
from app.metrics import Metrics
from tests.support.server import make_settings, running_api
from tests.support.wait import eventually

pytestmark = pytest.mark.integration
TOKEN = "t" * 64
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def _seed(db_dsn: str, n: int, kind: str = "event", subject: str = "noetl.events.x") -> None:
    conn = await asyncpg.connect(db_dsn, server_settings={"search_path": "noetl"})
    try:
        for i in range(n):
            await conn.execute(
                "INSERT INTO outbox (execution_id, event_id, kind, subject, payload, payload_codec) "
                "VALUES ($1, $2, $3, $4, $5::jsonb, 'json')",
                7,
                1000 + i,
                kind,
                subject,
                json.dumps({"i": i}),
            )
    finally:
        await conn.close()


async def test_claim_mark_and_pending_count(db_dsn: str) -> None:
    await _seed(db_dsn, 5)
    async with running_api(make_settings(db_dsn, NOETL_INTERNAL_API_TOKEN=TOKEN)) as api:
        assert await api.get("/api/internal/outbox/pending-count", headers=AUTH) == (200, {"pending": 5})
        status, body = await api.post("/api/internal/outbox/claim?limit=3", json={}, headers=AUTH)
        assert status == 200 and body["claimed"] == 3
        row = body["rows"][0]
        assert set(row) == {
            "outbox_id",
            "event_id",
            "execution_id",
            "subject",
            "payload",
            "payload_codec",
            "attempts",
        }
        assert row["attempts"] == 1 and row["payload"] == {"i": 0}
        # body limit wins over the query string
        status, body2 = await api.post(
            "/api/internal/outbox/claim?limit=100", json={"limit": 1}, headers=AUTH
        )
        assert body2["claimed"] == 1
        assert await api.get("/api/internal/outbox/pending-count", headers=AUTH) == (200, {"pending": 1})
        ids = [r["outbox_id"] for r in body["rows"]]
        assert await api.post(
            "/api/internal/outbox/mark-published", json={"outbox_ids": ids}, headers=AUTH
        ) == (200, {"marked": 3})
        assert (await api.post("/api/internal/outbox/mark-published", json={"outbox_ids": []}, headers=AUTH))[
            0
        ] == 422
        failed = body2["rows"][0]["outbox_id"]
        status, out = await api.post(
            "/api/internal/outbox/mark-failed",
            json={"outbox_id": failed, "error": "boom", "attempts": 3},
            headers=AUTH,
        )
        assert (status, out) == (200, {"marked": True, "available_at_in": 4})
        assert (
            await api.post(
                "/api/internal/outbox/mark-failed", json={"outbox_id": failed, "error": ""}, headers=AUTH
            )
        )[0] == 422
        # the failed row is not claimable until its backoff passes
        assert await api.get("/api/internal/outbox/pending-count", headers=AUTH) == (200, {"pending": 1})


async def test_inflight_rows_are_reclaimed_after_their_lease(db_dsn: str) -> None:
    await _seed(db_dsn, 2)
    pool = await asyncpg.create_pool(db_dsn, server_settings={"search_path": "noetl"})
    try:
        first = await outbox.claim(pool, 10, lease_seconds=60)
        assert len(first) == 2 and await outbox.claim(pool, 10, lease_seconds=60) == []
        await pool.execute("UPDATE outbox SET locked_at = now() - interval '61 seconds'")
        again = await outbox.claim(pool, 10, lease_seconds=60)
        assert [r.outbox_id for r in again] == [r.outbox_id for r in first]
        assert all(r.reclaimed and r.attempts == 2 for r in again)
    finally:
        await pool.close()


async def test_concurrent_claimers_never_share_rows(db_dsn: str) -> None:
    await _seed(db_dsn, 200)
    pool = await asyncpg.create_pool(db_dsn, server_settings={"search_path": "noetl"}, min_size=1, max_size=8)
    try:
        batches = await asyncio.gather(*(outbox.claim(pool, 30, 60) for _ in range(8)))
        ids = [r.outbox_id for b in batches for r in b]
        assert len(ids) == len(set(ids)) == 200
    finally:
        await pool.close()


async def test_relay_publishes_with_msg_id_and_backs_off_failures(db_dsn: str, nats_url: str) -> None:
    await _seed(db_dsn, 3, subject="relaytest.default.default.7.0")
    await _seed_failed_subject(db_dsn)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    stream = "RELAYTEST"
    await js.add_stream(name=stream, subjects=["relaytest.default.default.7.*"], duplicate_window=120)
    pool = await asyncpg.create_pool(db_dsn, server_settings={"search_path": "noetl"})

    async def publish(subject: str, data: bytes, msg_id: str) -> None:
        if subject == "bad.subject":
            raise RuntimeError("no stream for subject")
        await js.publish(subject, data, headers={"Nats-Msg-Id": msg_id})

    try:
        relay = outbox.Relay(pool, publish, Metrics())
        assert await relay.run_once() == 4
        info = await js.stream_info(stream)
        assert info.state.messages == 3
        rows = await pool.fetch("SELECT status, last_error, attempts FROM outbox ORDER BY outbox_id")
        assert [r["status"] for r in rows] == ["PUBLISHED"] * 3 + ["FAILED"]
        assert "no stream for subject" in rows[3]["last_error"]
        # a re-publish of the same rows (e.g. a relay killed before marking) is de-duplicated by Nats-Msg-Id
        await pool.execute("UPDATE outbox SET status = 'PENDING' WHERE subject <> 'bad.subject'")
        assert await relay.run_once() == 3
        assert (await js.stream_info(stream)).state.messages == 3
        # the failed row comes back after its backoff
        await pool.execute("UPDATE outbox SET available_at = now() WHERE status = 'FAILED'")
        assert await relay.run_once() == 1
    finally:
        await js.delete_stream(stream)
        await nc.close()
        await pool.close()


async def _seed_failed_subject(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn, server_settings={"search_path": "noetl"})
    try:
        await conn.execute(
            "INSERT INTO outbox (execution_id, event_id, kind, subject, payload, payload_codec) "
            "VALUES (7, 999, 'event', 'bad.subject', '{}'::jsonb, 'json')"
        )
    finally:
        await conn.close()


async def test_runtime_registry(db_dsn: str) -> None:
    async with running_api(make_settings(db_dsn)) as api:
        status, body = await api.post(
            "/api/worker/pool/register",
            json={
                "name": "worker-abc",
                "component_type": "worker_pool",
                "runtime": "python",
                "status": "READY",
                "capacity": 4,
                "pid": 1,
                "hostname": "h",
                "labels": {"pool_name": "shared"},
                "meta": {"nats_url": "nats://user:s3cret@nats:4222"},
            },
        )
        assert status == 200 and body["status"] == "ok" and isinstance(body["runtime_id"], str)
        assert "s3cret" not in json.dumps(body)
        again = await api.post(
            "/api/worker/pool/register", json={"name": "worker-abc", "runtime": {"kind": "python"}}
        )
        assert again[1]["runtime_id"] == body["runtime_id"]
        assert (await api.post("/api/worker/pool/register", json={"name": "x", "kind": "weird"}))[0] == 422
        assert (await api.post("/api/worker/pool/register", json={"name": "x", "kind": "broker"}))[0] == 400
        assert (await api.post("/api/worker/pool/heartbeat", json={"name": "worker-abc"}))[1][
            "status"
        ] == "ok"
        status, hb = await api.post("/api/worker/pool/heartbeat", json={"name": "ghost"})
        assert (status, hb["status"]) == (200, "recreated")
        status, out, _ = await api.request(
            "DELETE", "/api/worker/pool/deregister", json={"name": "worker-abc"}
        )
        assert (status, out) == (200, {"status": "ok", "name": "worker-abc", "kind": "worker_pool"})
        status, pools = await api.get("/api/worker/pools?status=offline")
        assert pools["count"] == 1 and pools["items"][0]["name"] == "worker-abc"
        assert (await api.get("/api/pool/status"))[0] == 404


async def test_heartbeat_without_auto_recreate(db_dsn: str) -> None:
    async with running_api(make_settings(db_dsn, NOETL_AUTO_RECREATE_RUNTIME="false")) as api:
        status, body, headers = await api.request(
            "POST", "/api/worker/pool/heartbeat", json={"name": "ghost"}
        )
        assert status == 404 and body["detail"] == {"status": "unknown", "name": "ghost"}
        assert headers["Retry-After"] == "3"


async def test_relay_wakes_on_signal(db_dsn: str, nats_url: str) -> None:
    pool = await asyncpg.create_pool(db_dsn, server_settings={"search_path": "noetl"})
    seen: list[str] = []

    async def publish(subject: str, data: bytes, msg_id: str) -> None:
        seen.append(msg_id)

    wake = asyncio.Event()
    relay = outbox.Relay(pool, publish, Metrics())
    task = asyncio.create_task(relay.run_forever(wake, idle_sleep=30))
    try:
        await asyncio.sleep(0)
        await _seed(db_dsn, 1)
        wake.set()
        await eventually(lambda: _ready(seen), timeout=5, what="relay woken by the signal")
    finally:
        task.cancel()
        await pool.close()


async def _ready(seen: list[str]) -> bool:
    return bool(seen)
