"""Commands: lookup and lease-based claims (server-contract §5)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from app.bootstrap import Deps
from app.db.types import Conn
from app.errors import Conflict, NotFound
from app.services.eventlog import append_events, naive_utc
from app.services.locks import lock_execution, try_lock_command

TERMINAL_COMMAND = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
MAX_ATTEMPTS = 3

COMMAND_SQL = """
SELECT c.command_id, c.event_id, c.execution_id, c.catalog_id, c.parent_execution_id, c.step_name, c.tool_kind,
       c.status, c.worker_id, c.claimed_at, c.started_at, c.updated_at, c.attempt, c.context, c.meta,
       e.status AS execution_status
  FROM command c LEFT JOIN execution e ON e.execution_id = c.execution_id
 WHERE c.event_id = $1
 LIMIT 1
"""

WORKER_SQL = "SELECT status, heartbeat FROM runtime WHERE kind = 'worker_pool' AND name = $1"

CLAIM_UPDATE_SQL = """
UPDATE command SET status = 'CLAIMED', worker_id = $3, claimed_at = now(), updated_at = now(),
       latest_event_id = $4, attempt = $5, meta = $6
 WHERE execution_id = $1 AND command_id = $2
"""


def command_body(row: asyncpg.Record) -> dict[str, Any]:
    """The shape both the Rust and the Python workers parse (ids as integers, strings never null)."""
    return {
        "execution_id": row["execution_id"],
        "node_id": row["step_name"] or "",
        "node_name": row["step_name"] or "",
        "action": row["tool_kind"] or "",
        "context": row["context"] or {},
        "meta": row["meta"] or {},
    }


async def get_command(deps: Deps, event_id: int) -> dict[str, Any]:
    """GET /api/commands/{event_id}."""
    row = await deps.pool.fetchrow(COMMAND_SQL, event_id)
    if row is None:
        raise NotFound(f"command not found: {event_id}")
    return command_body(row)


def _active(message: str, retry_after: int) -> Conflict:
    return Conflict(message, code="active_claim", retry_after=retry_after)


def _age_seconds(row: asyncpg.Record, now: datetime) -> float:
    ref = row["claimed_at"] or row["started_at"] or row["updated_at"]
    return (now - ref).total_seconds() if ref else float("inf")


async def _reclaim_reason(conn: Conn, deps: Deps, row: asyncpg.Record, now: datetime) -> str | None:
    """None to keep the current holder, else why the lease is over (§5.5, in order)."""
    s = deps.settings.server
    age = _age_seconds(row, now)
    if age < s.claim_lease_seconds:
        return None
    worker = await conn.fetchrow(WORKER_SQL, row["worker_id"])
    if worker is None:
        return "lease_expired"
    if worker["status"] != "ready":
        return "worker_inactive"
    if (now - worker["heartbeat"]).total_seconds() >= s.worker_heartbeat_stale_seconds:
        return "worker_heartbeat_stale"
    if age < s.healthy_worker_hard_timeout_seconds:
        return None
    return "healthy_worker_hard_timeout"


async def claim(deps: Deps, event_id: int, worker_id: str, locality: dict[str, Any] | None) -> dict[str, Any]:
    """Lease a command to a worker; raises Conflict with detail.code for every refusal."""
    retry_after = deps.settings.server.claim_retry_after_seconds
    now = datetime.now(UTC)
    exhausted = False
    async with deps.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(COMMAND_SQL, event_id)
        if row is None:
            deps.metrics.command_claims.labels("not_found").inc()
            raise NotFound(f"command not found: {event_id}")
        if not await try_lock_command(conn, row["command_id"]):
            deps.metrics.command_claims.labels("active_claim").inc()
            raise _active(f"command {event_id} is being claimed by another request", retry_after)
        await lock_execution(conn, row["execution_id"])
        row = await conn.fetchrow(COMMAND_SQL, event_id)
        assert row is not None
        if row["status"] in TERMINAL_COMMAND:
            deps.metrics.command_claims.labels("already_terminal").inc()
            raise Conflict(f"command {event_id} is already {row['status']}", code="already_terminal")
        ex_status = (row["execution_status"] or "RUNNING").upper()
        if ex_status == "CANCELLED":
            deps.metrics.command_claims.labels("execution_cancelled").inc()
            raise Conflict(f"execution {row['execution_id']} was cancelled", code="execution_cancelled")
        if ex_status in ("COMPLETED", "FAILED"):
            deps.metrics.command_claims.labels("already_terminal").inc()
            raise Conflict(f"execution {row['execution_id']} is already {ex_status}", code="already_terminal")
        meta = dict(row["meta"] or {})
        attempt = int(row["attempt"] or 1)
        reclaim: dict[str, Any] = {}
        if row["status"] in ("CLAIMED", "RUNNING"):
            if row["worker_id"] == worker_id:
                if row["status"] == "CLAIMED":
                    deps.metrics.command_claims.labels("ok").inc()
                    return {"status": "ok", "event_id": event_id, **command_body(row)}
                deps.metrics.command_claims.labels("active_claim").inc()
                raise _active(f"command {event_id} already started on this worker", retry_after)
            reason = await _reclaim_reason(conn, deps, row, now)
            if reason is None:
                deps.metrics.command_claims.labels("active_claim").inc()
                raise _active(
                    f"command {event_id} is held by another worker ({row['worker_id']})", retry_after
                )
            max_attempts = int(meta.get("max_attempts") or MAX_ATTEMPTS)
            if attempt + 1 > max_attempts:
                # Committed before answering: the failure and its orchestration pass must persist.
                await _exhaust(conn, deps, row, reason, now)
                exhausted = True
            attempt += 1
            reclaim = {
                "reclaimed": True,
                "reclaimed_from_worker": row["worker_id"],
                "reclaimed_reason": reason,
            }
        if not exhausted:
            await _write_claim(conn, deps, row, worker_id, locality, meta, attempt, reclaim, now)
    deps.signal_outbox()
    if exhausted:
        deps.metrics.command_claims.labels("already_terminal").inc()
        raise Conflict(
            f"command {event_id} failed: worker lost: max attempts exceeded", code="already_terminal"
        )
    deps.metrics.command_claims.labels("reclaimed" if reclaim else "ok").inc()
    body = {"status": "ok", "event_id": event_id, **command_body(row)}
    body["meta"] = meta
    if reclaim:
        body["reclaimed"] = True
    return body


async def _write_claim(
    conn: Conn,
    deps: Deps,
    row: asyncpg.Record,
    worker_id: str,
    locality: dict[str, Any] | None,
    meta: dict[str, Any],
    attempt: int,
    reclaim: dict[str, Any],
    now: datetime,
) -> None:
    """command.claimed event and the command row update, in the claim's transaction."""
    meta.update({"attempt": attempt, "attempts": attempt})
    claimed_id = deps.ids.next_id()
    ev_meta: dict[str, Any] = {
        "command_id": row["command_id"],
        "worker_id": worker_id,
        "actionable": False,
        "informative": True,
        **reclaim,
    }
    if locality:
        ev_meta["locality"] = locality
    await append_events(
        conn,
        deps.settings,
        [
            {
                "execution_id": row["execution_id"],
                "catalog_id": row["catalog_id"],
                "event_id": claimed_id,
                "created_at": naive_utc(now),
                "event_type": "command.claimed",
                "node_id": row["step_name"],
                "node_name": row["step_name"],
                "status": "RUNNING",
                "worker_id": worker_id,
                "command_id": row["command_id"],
                "meta": ev_meta,
                "result": {
                    "status": "RUNNING",
                    "context": {"command_id": str(row["command_id"]), "worker_id": worker_id},
                },
            }
        ],
        now,
    )
    await conn.execute(
        CLAIM_UPDATE_SQL, row["execution_id"], row["command_id"], worker_id, claimed_id, attempt, meta
    )


async def _exhaust(conn: Conn, deps: Deps, row: asyncpg.Record, reason: str, now: datetime) -> None:
    """Write command.failed for a command that lost its worker too often, then orchestrate."""
    from app.services.orchestration import orchestrate_locked

    failed_id = deps.ids.next_id()
    error = "worker lost: max attempts exceeded"
    await append_events(
        conn,
        deps.settings,
        [
            {
                "execution_id": row["execution_id"],
                "catalog_id": row["catalog_id"],
                "event_id": failed_id,
                "created_at": naive_utc(now),
                "event_type": "command.failed",
                "node_id": row["step_name"],
                "node_name": row["step_name"],
                "status": "FAILED",
                "command_id": row["command_id"],
                "error": error,
                "meta": {
                    "command_id": row["command_id"],
                    "reclaimed_reason": reason,
                    "actionable": True,
                    "emitter": "control_plane",
                },
                "result": {
                    "status": "FAILED",
                    "context": {"command_id": str(row["command_id"]), "error": error},
                },
            }
        ],
        now,
    )
    await conn.execute(
        "UPDATE command SET status = 'FAILED', error = $3, completed_at = now(), updated_at = now(), "
        "latest_event_id = $4 WHERE execution_id = $1 AND command_id = $2",
        row["execution_id"],
        row["command_id"],
        error,
        failed_id,
    )
    await orchestrate_locked(conn, deps, row["execution_id"], now)
