"""Retention purge (server-contract §11.6): terminal executions' rows, published outbox, stale runtime rows.

Every delete runs in bounded batches and only touches executions whose noetl.execution row is terminal;
dry_run answers the same counts and deletes nothing."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Any

import asyncpg

from app.bootstrap import Deps
from app.db.types import Conn

log = logging.getLogger(__name__)

TERMINAL = "('COMPLETED', 'FAILED', 'CANCELLED')"

# Each statement: ($1 = cutoff in seconds, $2 = batch size); a batch either counts or deletes.
COMMANDS_PICK = f"""
SELECT c.execution_id, c.command_id FROM command c JOIN execution e USING (execution_id)
 WHERE e.status IN {TERMINAL} AND c.completed_at < now() - make_interval(secs => $1)
 LIMIT $2
"""
COMMANDS_DELETE = f"""
DELETE FROM command WHERE (execution_id, command_id) IN ({COMMANDS_PICK})
"""
OUTBOX_PICK = f"""
SELECT o.outbox_id FROM outbox o
 WHERE o.status = 'PUBLISHED' AND o.published_at < now() - make_interval(secs => $1)
   AND NOT EXISTS (SELECT 1 FROM execution e
                    WHERE e.execution_id = o.execution_id AND e.status NOT IN {TERMINAL})
 LIMIT $2
"""
OUTBOX_DELETE = f"DELETE FROM outbox WHERE outbox_id IN ({OUTBOX_PICK})"
RUNTIME_PICK = """
SELECT runtime_id FROM runtime
 WHERE kind = 'worker_pool' AND status = 'offline' AND heartbeat < now() - make_interval(secs => $1)
 LIMIT $2
"""
RUNTIME_DELETE = f"DELETE FROM runtime WHERE runtime_id IN ({RUNTIME_PICK})"
# Events and results of executions that ended before the cutoff (a running execution has no end_time).
EVENTS_PICK = f"""
SELECT ev.execution_id, ev.event_id FROM event ev JOIN execution e USING (execution_id)
 WHERE e.status IN {TERMINAL} AND e.end_time < now() - make_interval(secs => $1)
 LIMIT $2
"""
EVENTS_DELETE = f"DELETE FROM event WHERE (execution_id, event_id) IN ({EVENTS_PICK})"
RESULTS_PICK = f"""
SELECT r.result_id FROM result_store r JOIN execution e USING (execution_id)
 WHERE e.status IN {TERMINAL} AND e.end_time < now() - make_interval(secs => $1)
 LIMIT $2
"""
RESULTS_DELETE = f"DELETE FROM result_store WHERE result_id IN ({RESULTS_PICK})"


@dataclass(frozen=True)
class Retention:
    command_retention_days: float = 7.0
    runtime_stale_minutes: float = 60.0
    event_retention_days: float = 0.0  # 0 = never delete events and results
    outbox_retention_days: float = 7.0
    dry_run: bool = False
    batch_size: int = 1000
    max_batches: int = 100


async def _run(
    conn: Conn, pick: str, delete: str, cutoff_s: float, r: Retention, *, events: bool = False
) -> int:
    if r.dry_run:
        # The same rows the batches would take, capped at what one run may delete.
        return int(
            await conn.fetchval(f"SELECT count(*) FROM ({pick}) t", cutoff_s, r.batch_size * r.max_batches)
        )
    total = 0
    for _ in range(r.max_batches):
        async with conn.transaction():
            if events:
                # The only path allowed to delete from noetl.event (append-only trigger, §15.3).
                await conn.execute("SET LOCAL noetl.allow_event_delete = 'on'")
            status = await conn.execute(delete, cutoff_s, r.batch_size)
        n = int(status.split()[-1])
        total += n
        if n < r.batch_size:
            break
    return total


async def purge(pool: asyncpg.Pool[Any], r: Retention) -> dict[str, Any]:
    """Apply the retention policy once; returns the counts (would-be counts with dry_run)."""
    day, minute = 86400.0, 60.0
    async with pool.acquire() as conn:
        out: dict[str, Any] = {
            "commands_purged": await _run(
                conn, COMMANDS_PICK, COMMANDS_DELETE, r.command_retention_days * day, r
            ),
            "runtime_purged": await _run(
                conn, RUNTIME_PICK, RUNTIME_DELETE, r.runtime_stale_minutes * minute, r
            ),
            "outbox_purged": await _run(conn, OUTBOX_PICK, OUTBOX_DELETE, r.outbox_retention_days * day, r),
            "events_purged": 0,
            "results_purged": 0,
        }
        if r.event_retention_days > 0:
            cutoff = r.event_retention_days * day
            out["events_purged"] = await _run(conn, EVENTS_PICK, EVENTS_DELETE, cutoff, r, events=True)
            out["results_purged"] = await _run(conn, RESULTS_PICK, RESULTS_DELETE, cutoff, r)
    out["dry_run"] = r.dry_run
    return out


def retention_from(deps: Deps, **overrides: Any) -> Retention:
    """The configured defaults (NOETL_RETENTION_*, NOETL_CLEANUP_*) with request overrides applied."""
    ops = deps.settings.ops
    base = Retention(
        command_retention_days=ops.command_retention_days,
        runtime_stale_minutes=ops.runtime_stale_minutes,
        event_retention_days=ops.event_retention_days,
        outbox_retention_days=ops.outbox_retention_days,
        batch_size=ops.cleanup_batch_size,
        max_batches=ops.cleanup_max_batches,
    )
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


async def run(deps: Deps, r: Retention, trigger: str) -> dict[str, Any]:
    """Purge once and count it in the metrics."""
    try:
        out = await purge(deps.pool, r)
    except Exception:
        deps.metrics.cleanup_runs.labels(trigger, "error").inc()
        raise
    deps.metrics.cleanup_runs.labels(trigger, "dry_run" if r.dry_run else "ok").inc()
    if not r.dry_run:
        for key, value in out.items():
            if key.endswith("_purged") and value:
                deps.metrics.cleanup_purged.labels(key.removesuffix("_purged")).inc(value)
    return out


async def cleanup_loop(deps: Deps) -> None:
    """The scheduled purge of the consumers role (NOETL_CLEANUP_INTERVAL_SECONDS; 0 = off)."""
    interval = deps.settings.ops.cleanup_interval_seconds
    if interval <= 0:
        return
    while True:
        try:
            out = await run(deps, retention_from(deps), "schedule")
            log.info("cleanup purge", extra={k: v for k, v in out.items() if k.endswith("_purged")})
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failed run is retried at the next interval
            log.warning("cleanup purge failed", extra={"error": str(exc)[:200]})
        await asyncio.sleep(interval)
