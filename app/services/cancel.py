"""Cancel (with cascade), operator finalize and stale-execution cleanup (server-contract §4.6, §4.8, §4.9)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.bootstrap import Deps
from app.db.types import Conn
from app.errors import NotFound, ValidationFailed
from app.services.eventlog import TERMINAL_TYPES, append_events, naive_utc
from app.services.locks import lock_execution

TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")

DESCENDANTS_SQL = """
WITH RECURSIVE tree AS (
    SELECT execution_id FROM execution WHERE parent_execution_id = $1
    UNION
    SELECT e.execution_id FROM execution e JOIN tree t ON e.parent_execution_id = t.execution_id
)
SELECT execution_id FROM tree
"""


async def _execution(conn: Conn, execution_id: int) -> Any:
    row = await conn.fetchrow(
        "SELECT execution_id, catalog_id, status FROM execution WHERE execution_id = $1", execution_id
    )
    if row is None:
        exists = await conn.fetchval("SELECT 1 FROM event WHERE execution_id = $1 LIMIT 1", execution_id)
        if not exists:
            raise NotFound(f"execution not found: {execution_id}")
    return row


async def _is_terminal(conn: Conn, execution_id: int, row: Any) -> bool:
    if row is not None and row["status"] in TERMINAL:
        return True
    return bool(
        await conn.fetchval(
            "SELECT 1 FROM event WHERE execution_id = $1 AND event_type = ANY($2::text[]) LIMIT 1",
            execution_id,
            list(TERMINAL_TYPES),
        )
    )


async def _cancel_one(
    conn: Conn,
    deps: Deps,
    execution_id: int,
    catalog_id: int,
    reason: str,
    cascade: bool,
    parent_cancel_id: int | None,
    now: datetime,
) -> int:
    event_id = deps.ids.next_id()
    await append_events(
        conn,
        deps.settings,
        [
            {
                "execution_id": execution_id,
                "catalog_id": catalog_id,
                "event_id": event_id,
                "created_at": naive_utc(now),
                "event_type": "execution.cancelled",
                "node_id": "cancel",
                "node_name": "cancel",
                "status": "CANCELLED",
                "error": reason,
                "meta": {
                    "reason": reason,
                    "cancelled_by": "api",
                    "cascade": cascade,
                    "parent_cancel_id": parent_cancel_id,
                    "actionable": True,
                    "emitter": "control_plane",
                },
                "result": {"status": "CANCELLED", "context": {"reason": reason}},
            }
        ],
        now,
    )
    await conn.execute(
        "UPDATE execution SET status = 'CANCELLED', end_time = COALESCE(end_time, now()), error = $2, "
        "last_event_id = GREATEST(COALESCE(last_event_id, 0), $3), last_event_type = 'execution.cancelled', "
        "last_node_name = 'cancel', updated_at = now() WHERE execution_id = $1",
        execution_id,
        reason,
        event_id,
    )
    await conn.execute(
        "UPDATE command SET status = 'CANCELLED', completed_at = now(), updated_at = now() "
        "WHERE execution_id = $1 AND status IN ('PENDING', 'CLAIMED')",
        execution_id,
    )
    return event_id


async def cancel(deps: Deps, execution_id: int, reason: str | None, cascade: bool) -> dict[str, Any]:
    """Write execution.cancelled for the execution (and, with cascade, every live descendant)."""
    reason = reason or "User requested cancellation"
    now = datetime.now(UTC)
    cancelled: list[str] = []
    async with deps.pool.acquire() as conn, conn.transaction():
        await lock_execution(conn, execution_id)
        row = await _execution(conn, execution_id)
        if await _is_terminal(conn, execution_id, row):
            return {
                "status": "already_completed",
                "execution_id": str(execution_id),
                "cancelled_executions": [],
                "message": f"Execution {execution_id} is already completed",
            }
        catalog_id = (
            row["catalog_id"]
            if row
            else await conn.fetchval(
                "SELECT catalog_id FROM event WHERE execution_id = $1 LIMIT 1", execution_id
            )
        )
        root_event = await _cancel_one(conn, deps, execution_id, catalog_id, reason, cascade, None, now)
        cancelled.append(str(execution_id))
        if cascade:
            for child in [r["execution_id"] for r in await conn.fetch(DESCENDANTS_SQL, execution_id)]:
                await lock_execution(conn, child)
                crow = await _execution(conn, child)
                if crow is None or await _is_terminal(conn, child, crow):
                    continue
                await _cancel_one(conn, deps, child, crow["catalog_id"], reason, cascade, root_event, now)
                cancelled.append(str(child))
    deps.signal_outbox()
    return {
        "status": "cancelled",
        "execution_id": str(execution_id),
        "cancelled_executions": cancelled,
        "message": f"Cancelled {len(cancelled)} execution(s)",
    }


async def finalize(deps: Deps, execution_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """Force a terminal event: {status: COMPLETED|FAILED, error?} or {reason?} (= FAILED)."""
    if "status" in body:
        target = str(body["status"]).upper()
        if target not in ("COMPLETED", "FAILED"):
            raise ValidationFailed("status must be COMPLETED or FAILED")
        error = body.get("error")
    else:
        target, error = "FAILED", body.get("reason") or "finalized by operator"
    now = datetime.now(UTC)
    async with deps.pool.acquire() as conn, conn.transaction():
        await lock_execution(conn, execution_id)
        row = await _execution(conn, execution_id)
        if await _is_terminal(conn, execution_id, row):
            return {
                "status": "already_completed",
                "execution_id": str(execution_id),
                "message": f"Execution {execution_id} is already terminal",
            }
        catalog_id = (
            row["catalog_id"]
            if row
            else await conn.fetchval(
                "SELECT catalog_id FROM event WHERE execution_id = $1 LIMIT 1", execution_id
            )
        )
        etype = "playbook.completed" if target == "COMPLETED" else "playbook.failed"
        ctx: dict[str, Any] = {"status": target, "finalized": True}
        if error:
            ctx["error"] = error
        event_id = deps.ids.next_id()
        await append_events(
            conn,
            deps.settings,
            [
                {
                    "execution_id": execution_id,
                    "catalog_id": catalog_id,
                    "event_id": event_id,
                    "created_at": naive_utc(now),
                    "event_type": etype,
                    "node_id": "playbook",
                    "node_name": "playbook",
                    "status": target,
                    "error": error if target == "FAILED" else None,
                    "meta": {"emitter": "control_plane", "finalized_by": "api", "actionable": False},
                    "result": {"status": target, "context": ctx},
                }
            ],
            now,
        )
        await conn.execute(
            "UPDATE execution SET status = $2, end_time = COALESCE(end_time, now()), error = $3, "
            "last_event_id = GREATEST(COALESCE(last_event_id, 0), $4), last_event_type = $5, updated_at = now() "
            "WHERE execution_id = $1",
            execution_id,
            target,
            error,
            event_id,
            etype,
        )
    deps.signal_outbox()
    return {
        "status": "finalized",
        "execution_id": str(execution_id),
        "message": f"Execution {execution_id} finalized as {target}",
    }


async def cleanup(deps: Deps, older_than_minutes: int, dry_run: bool) -> dict[str, Any]:
    """Cancel (no cascade) every running execution whose start is older than N minutes."""
    rows = await deps.pool.fetch(
        "SELECT execution_id FROM execution WHERE status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED') "
        "AND COALESCE(start_time, created_at) < now() - make_interval(mins => $1) ORDER BY execution_id",
        older_than_minutes,
    )
    ids = [int(r["execution_id"]) for r in rows]
    if not dry_run:
        done = []
        for eid in ids:
            out = await cancel(deps, eid, f"cleanup: running longer than {older_than_minutes} minutes", False)
            if out["status"] == "cancelled":
                done.append(eid)
        ids = done
    verb = "Would cancel" if dry_run else "Cancelled"
    return {"cancelled_count": len(ids), "execution_ids": ids, "message": f"{verb} {len(ids)} execution(s)"}
