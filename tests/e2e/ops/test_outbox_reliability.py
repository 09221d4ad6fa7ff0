"""Outbox reliability (issue: internal operations): a relay killed mid-batch, NATS down, mark-failed backoff."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import nats
import pytest

from app.devstack.nats import EmbeddedNats
from app.loops import SERVER_LOOPS
from tests.support.playbooks import LINEAR, register, wait_terminal
from tests.support.server import make_settings, running_api
from tests.support.test_worker import TestWorker
from tests.support.wait import eventually

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "7e1a" * 16
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROWS = 5_000


def _consumers(db_dsn: str, nats_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOETL_", "NATS_", "WORKER_"))}
    env.update(
        DATABASE_URL=db_dsn,
        NATS_URL=nats_url,
        NOETL_OUTBOX_INFLIGHT_LEASE_SECONDS="2",
    )
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "app", "consumers"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def _counts(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT status, count(*) AS n FROM outbox GROUP BY status")
    return {r["status"]: int(r["n"]) for r in rows}


async def test_relay_killed_mid_batch_loses_nothing_and_duplicates_are_absorbed(
    db_dsn: str, own_nats: EmbeddedNats, tmp_path: Path
) -> None:
    nc = await nats.connect(own_nats.url)
    js = nc.jetstream()
    await js.add_stream(name="RELAYKILL", subjects=["relaykill.>"], duplicate_window=120)
    conn = await asyncpg.connect(db_dsn, server_settings={"search_path": "noetl"})
    procs: list[subprocess.Popen[bytes]] = []
    try:
        await conn.execute(
            "INSERT INTO outbox (execution_id, event_id, kind, subject, payload, payload_codec)"
            " SELECT 1, g, 'event', 'relaykill.default.default.1.0', jsonb_build_object('event_id', g), 'json'"
            " FROM generate_series(1, $1) g",
            ROWS,
        )
        procs.append(_consumers(db_dsn, own_nats.url, tmp_path / "consumers-1.log"))

        async def frozen_mid_batch() -> dict[str, int] | None:
            # Freeze the relay and look: a batch claimed but not yet marked is what a crash must survive.
            os.killpg(procs[0].pid, signal.SIGSTOP)
            # A statement the relay sent just before it froze still completes: wait until none is running.
            for _ in range(200):
                busy = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid() AND state NOT IN ('idle', 'idle in transaction')"
                )
                if not busy:
                    break
                await asyncio.sleep(0.005)
            c = await _counts(conn)
            if c.get("IN_FLIGHT", 0) > 0 and 0 < c.get("PUBLISHED", 0) < ROWS // 2:
                return c
            os.killpg(procs[0].pid, signal.SIGCONT)
            return None

        after_kill = await eventually(
            frozen_mid_batch, timeout=60, interval=0.01, what="relay frozen mid-batch"
        )
        os.killpg(procs[0].pid, signal.SIGKILL)
        procs[0].wait(10)
        assert await _counts(conn) == after_kill  # the dead relay left its batch IN_FLIGHT

        procs.append(_consumers(db_dsn, own_nats.url, tmp_path / "consumers-2.log"))

        async def drained() -> bool:
            return (await _counts(conn)) == {"PUBLISHED": ROWS}

        await eventually(drained, timeout=120, what="every row published after the restart")
        info = await js.stream_info("RELAYKILL")
        assert info.state.messages == ROWS  # nothing lost, every re-publish dropped by Nats-Msg-Id
        reclaimed = await conn.fetchval("SELECT count(*) FROM outbox WHERE attempts > 1")
        assert reclaimed >= after_kill["IN_FLIGHT"]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)
        await conn.close()
        await js.delete_stream("RELAYKILL")
        await nc.close()


async def test_nats_down_for_30s_then_everything_is_published(db_dsn: str, own_nats: EmbeddedNats) -> None:
    settings = make_settings(db_dsn, own_nats.url)
    async with running_api(settings, SERVER_LOOPS) as api:
        await register(api, LINEAR)

        async def ready() -> bool:
            status, _ = await api.get("/readyz")
            return status == 200

        await eventually(ready, what="ready with NATS up")
        own_nats.stop()
        started: list[str] = []
        down_until = time.monotonic() + 30.0
        saw_503 = False
        while time.monotonic() < down_until and len(started) < 200:  # bounded in count and time
            status, res = await api.post("/api/execute", json={"path": "tests/linear"})
            assert status == 200, res  # accepted into the log and the outbox while NATS is down
            started.append(res["execution_id"])
            status, body = await api.get("/readyz")
            saw_503 = saw_503 or status == 503
            await asyncio.sleep(0.25)  # pacing of the producer, not a wait for a condition
        assert saw_503
        status, _ = await api.get("/readyz")
        assert status == 503
        own_nats.start()
        await eventually(ready, timeout=30, what="ready again after NATS returns")
        async with TestWorker(own_nats.url):
            for eid in started:
                final = await wait_terminal(api, eid, timeout=60)
                assert final["status"] == "COMPLETED", (eid, final)
        await _all_published(db_dsn)


async def _all_published(db_dsn: str) -> None:
    async def done() -> bool:
        conn = await asyncpg.connect(db_dsn, server_settings={"search_path": "noetl"})
        try:
            return int(await conn.fetchval("SELECT count(*) FROM outbox WHERE status <> 'PUBLISHED'")) == 0
        finally:
            await conn.close()

    await eventually(done, timeout=20, what="every outbox row (commands and mirror) published")


async def test_mark_failed_row_is_claimable_again_only_after_its_backoff(db_dsn: str) -> None:
    settings = make_settings(db_dsn, None, NOETL_INTERNAL_API_TOKEN=TOKEN, NOETL_OUTBOX_RELAY_ENABLED="false")
    async with running_api(settings, SERVER_LOOPS) as api:
        conn = await asyncpg.connect(db_dsn, server_settings={"search_path": "noetl"})
        try:
            await conn.execute(
                "INSERT INTO outbox (execution_id, event_id, kind, subject, payload) VALUES (1, 77, 'event', 's', '{}')"
            )
        finally:
            await conn.close()
        _, first = await api.post("/api/internal/outbox/claim?limit=5", headers=AUTH)
        [row] = first["rows"]
        status, marked = await api.post(
            "/api/internal/outbox/mark-failed",
            json={"outbox_id": row["outbox_id"], "error": "nats: timeout", "attempts": 3},
            headers=AUTH,
        )
        assert status == 200 and marked["available_at_in"] == 4  # 2^(3-1) s
        failed_at = time.monotonic()
        _, early = await api.post("/api/internal/outbox/claim?limit=5", headers=AUTH)
        assert early["rows"] == []
        _, pending = await api.get("/api/internal/outbox/pending-count", headers=AUTH)
        assert pending == {"pending": 0}

        async def back() -> list[dict[str, object]] | None:
            _, again = await api.post("/api/internal/outbox/claim?limit=5", headers=AUTH)
            return again["rows"] or None

        rows = await eventually(back, timeout=10, interval=0.2, what="the failed row claimable again")
        assert time.monotonic() - failed_at >= 3.5
        assert rows[0]["outbox_id"] == row["outbox_id"] and rows[0]["attempts"] == 2
