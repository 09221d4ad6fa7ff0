"""Probes, shard-info, metrics and the error body against the real app, PostgreSQL and NATS."""

from __future__ import annotations

import pytest

from app.devstack.nats import EmbeddedNats
from tests.support.server import make_settings, running_api
from tests.support.wait import eventually

pytestmark = pytest.mark.integration


async def test_probes_and_shard_info(db_dsn: str, nats_url: str) -> None:
    async with running_api(make_settings(db_dsn, nats_url)) as api:
        assert await api.get("/healthz") == (200, {"status": "ok"})
        assert await api.get("/health") == (200, {"status": "ok"})
        status, body = await eventually(lambda: _ok(api, "/readyz"), what="readyz 200")
        assert body == {"status": "ready", "database": "connected", "nats": "connected"}
        status, body = await api.get("/api/health")
        assert status == 200 and body["status"] == "ok" and body["nats"] == "connected"
        status, body = await api.get("/api/runtime/shard-info?execution_id=325&shard_count=8")
        assert status == 200
        assert body == {
            "execution_id": 325,
            "shard_count": 8,
            "shard_index": 4,
            "source": "noetl-server",
            "hash_function": "twox_hash::XxHash64",
            "seed": 0,
            "server_config": {"shard_index": 0, "shard_count": 1},
        }
        for query, needle in [
            ("execution_id=325&shard_count=0", "shard_count must be >= 1"),
            ("execution_id=325&shard_count=1025", "exceeds practical maximum 1024"),
            ("execution_id=abc&shard_count=8", 'execution_id "abc" is not a valid i64'),
            ("execution_id=325", "shard_count is required"),
        ]:
            status, body = await api.get(f"/api/runtime/shard-info?{query}")
            assert status == 400, query
            assert needle in body["error"] and body["status"] == 400


async def _ok(api, path):  # type: ignore[no-untyped-def]
    status, body = await api.get(path)
    return (status, body) if status == 200 else None


async def test_degraded_mode_without_nats(db_dsn: str) -> None:
    async with running_api(make_settings(db_dsn)) as api:
        status, body = await api.get("/readyz")
        assert status == 200 and body["nats"] == "not_configured" and body["mode"] == "degraded"


async def test_readyz_follows_nats(db_dsn: str, own_nats: EmbeddedNats) -> None:
    async with running_api(make_settings(db_dsn, own_nats.url)) as api:
        await eventually(lambda: _ok(api, "/readyz"), what="ready with NATS up")
        own_nats.stop()

        async def not_ready():  # type: ignore[no-untyped-def]
            status, body = await api.get("/readyz")
            return body if status == 503 else None

        body = await eventually(not_ready, timeout=20, what="readyz 503 after NATS stopped")
        assert body["nats"] == "disconnected" and "nats" in body["error"]
        own_nats.start()
        await eventually(lambda: _ok(api, "/readyz"), timeout=20, what="ready again after NATS returns")


async def test_metrics_and_error_body(db_dsn: str) -> None:
    async with running_api(make_settings(db_dsn)) as api:
        await api.get("/api/runtime/shard-info?execution_id=1&shard_count=2")
        status, text = await api.get("/metrics")
        assert status == 200
        assert "noetl_up" in text
        assert 'noetl_http_requests_total{method="GET",route="/api/runtime/shard-info",status="200"}' in text
        status, body = await api.get("/api/nope")
        assert status == 404 and body["status"] == 404 and "route not found" in body["error"]


async def test_metrics_can_be_disabled(db_dsn: str) -> None:
    async with running_api(make_settings(db_dsn, NOETL_DISABLE_METRICS="true")) as api:
        status, _ = await api.get("/metrics")
        assert status == 404
