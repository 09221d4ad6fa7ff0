"""The transactional outbox: claim with SKIP LOCKED, publish with Nats-Msg-Id, mark, back off, reclaim."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from app.db.types import Executor
from app.metrics import Metrics

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "noetl_outbox"

CLAIM_SQL = """
WITH picked AS (
    SELECT outbox_id, status AS prev_status FROM outbox
    WHERE ((status IN ('PENDING', 'FAILED') AND available_at <= now())
        OR (status = 'IN_FLIGHT' AND locked_at < now() - make_interval(secs => $2)))
      AND ($3::text[] IS NULL OR kind = ANY($3::text[]))
    ORDER BY outbox_id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE outbox o
   SET status = 'IN_FLIGHT', attempts = o.attempts + 1, locked_at = now(), updated_at = now()
  FROM picked
 WHERE o.outbox_id = picked.outbox_id
RETURNING o.outbox_id, o.event_id, o.execution_id, o.subject, o.payload, o.payload_codec, o.attempts,
          o.kind, picked.prev_status
"""

MARK_PUBLISHED_SQL = """
UPDATE outbox SET status = 'PUBLISHED', published_at = now(), last_error = NULL, updated_at = now()
 WHERE outbox_id = ANY($1::bigint[])
"""

MARK_FAILED_SQL = """
UPDATE outbox SET status = 'FAILED', last_error = $2, available_at = now() + make_interval(secs => $3),
       updated_at = now()
 WHERE outbox_id = $1
"""

PENDING_COUNT_SQL = """
SELECT (SELECT count(*) FROM (SELECT 1 FROM outbox WHERE status IN ('PENDING', 'FAILED') AND available_at <= now()
                              LIMIT $2) ready)
     + (SELECT count(*) FROM (SELECT 1 FROM outbox
                               WHERE status = 'IN_FLIGHT' AND locked_at < now() - make_interval(secs => $1)
                              LIMIT $2) expired)
"""


@dataclass(frozen=True)
class OutboxRow:
    outbox_id: int
    event_id: int
    execution_id: int | None
    subject: str | None
    payload: Any
    payload_codec: str
    attempts: int
    kind: str
    reclaimed: bool

    def public(self) -> dict[str, Any]:
        """The claim route's row shape (§11.2)."""
        return {
            "outbox_id": self.outbox_id,
            "event_id": self.event_id,
            "execution_id": self.execution_id,
            "subject": self.subject,
            "payload": self.payload,
            "payload_codec": self.payload_codec,
            "attempts": self.attempts,
        }


def backoff_seconds(attempts: int, max_delay: int = 300) -> int:
    """min(max_delay, 2^min(8, max(0, attempts − 1))): 1, 2, 4 … 256 s."""
    return int(min(max_delay, 2 ** min(8, max(0, attempts - 1))))


async def claim(
    conn: Executor, limit: int, lease_seconds: float, kinds: list[str] | None = None
) -> list[OutboxRow]:
    """Claim up to `limit` claimable rows; concurrent claimers never get the same row."""
    recs = await conn.fetch(CLAIM_SQL, limit, float(lease_seconds), kinds or None)
    rows = [
        OutboxRow(
            r["outbox_id"],
            r["event_id"],
            r["execution_id"],
            r["subject"],
            r["payload"],
            r["payload_codec"],
            r["attempts"],
            r["kind"],
            r["prev_status"] == "IN_FLIGHT",
        )
        for r in recs
    ]
    rows.sort(key=lambda r: r.outbox_id)
    return rows


async def mark_published(conn: Executor, ids: list[int]) -> int:
    """Idempotent: rows already published stay published."""
    if not ids:
        return 0
    status = await conn.execute(MARK_PUBLISHED_SQL, ids)
    return int(status.split()[-1])


async def mark_failed(conn: Executor, outbox_id: int, error: str, attempts: int, max_delay: int = 300) -> int:
    """Back the row off; returns the delay in seconds."""
    delay = backoff_seconds(attempts, max_delay)
    await conn.execute(MARK_FAILED_SQL, outbox_id, error[:2000], float(delay))
    return delay


async def pending_count(conn: Executor, lease_seconds: float, cap: int = 1_000) -> int:
    """Claimable rows, counted up to `cap`: a scaler needs the size of a backlog, and counting a million rows
    takes hundreds of milliseconds where the capped count takes a few."""
    n = int(await conn.fetchval(PENDING_COUNT_SQL, float(lease_seconds), int(cap)))
    return min(n, int(cap))


Publish = Callable[[str, bytes, str], Awaitable[Any]]


def payload_bytes(row: OutboxRow) -> bytes:
    """Payloads are always published as JSON."""
    return json.dumps(row.payload, separators=(",", ":"), sort_keys=True, default=str).encode()


class Relay:
    """Claims batches and publishes them; command rows go first so workers never starve behind the mirror."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        publish: Publish,
        metrics: Metrics,
        *,
        batch_size: int = 100,
        lease_seconds: float = 60.0,
        concurrency: int = 256,
        kinds: list[str] | None = None,
    ) -> None:
        self.pool = pool
        self.publish = publish
        self.metrics = metrics
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        self.sem = asyncio.Semaphore(concurrency)
        self.kinds = kinds or None

    async def _publish_one(self, row: OutboxRow) -> str | None:
        if not row.subject:
            return "outbox row has no subject"
        async with self.sem:
            try:
                await self.publish(row.subject, payload_bytes(row), str(row.event_id))
            except Exception as exc:  # any publish failure backs the row off
                return f"{type(exc).__name__}: {exc}"[:2000] or "publish failed"
        return None

    async def run_once(self) -> int:
        """Claim, publish and mark one batch; returns how many rows were claimed."""
        rows = await claim(self.pool, self.batch_size, self.lease_seconds, self.kinds)
        if not rows:
            return 0
        reclaimed = sum(1 for r in rows if r.reclaimed)
        if reclaimed:
            self.metrics.outbox_inflight_reclaimed.inc(reclaimed)
        ordered = [r for r in rows if r.kind == "command"] + [r for r in rows if r.kind != "command"]
        commands = [r for r in ordered if r.kind == "command"]
        results: list[str | None] = []
        if commands:
            results += await asyncio.gather(*(self._publish_one(r) for r in commands))
        rest = ordered[len(commands) :]
        if rest:
            results += await asyncio.gather(*(self._publish_one(r) for r in rest))
        ok = [r.outbox_id for r, err in zip(ordered, results, strict=True) if err is None]
        await mark_published(self.pool, ok)
        for r, err in zip(ordered, results, strict=True):
            if err is None:
                self.metrics.outbox_published.labels(r.kind).inc()
            else:
                self.metrics.outbox_failed.labels(r.kind).inc()
                await mark_failed(self.pool, r.outbox_id, err, r.attempts)
                log.warning("outbox publish failed", extra={"outbox_id": r.outbox_id, "error": err[:200]})
        return len(rows)

    async def run_forever(
        self, wakeup: asyncio.Event, idle_sleep: float = 1.0, error_sleep: float = 5.0
    ) -> None:
        """Wake on the signal after commits, poll as a fallback."""
        while True:
            wakeup.clear()  # before claiming: a commit signalled during run_once is not lost
            try:
                n = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox relay error", extra={"error": str(exc)[:200]})
                await asyncio.sleep(error_sleep)
                continue
            if n >= self.batch_size:
                continue
            if n == 0:
                try:
                    await asyncio.wait_for(wakeup.wait(), timeout=idle_sleep)
                except TimeoutError:
                    pass
