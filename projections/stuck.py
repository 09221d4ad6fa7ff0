"""Why is this execution not moving? Open commands with their outbox state, claimant heartbeat and the
live workers of the pool their notification was addressed to."""

from __future__ import annotations

from typing import Any

from app.db.types import Conn

OPEN_COMMANDS_SQL = """
SELECT c.command_id, c.event_id, c.step_name, c.status, c.worker_id, c.issued_at, c.claimed_at,
       o.status AS outbox_status, o.attempts AS outbox_attempts, o.last_error AS outbox_last_error,
       o.subject AS outbox_subject, o.published_at AS outbox_published_at,
       r.status AS claimant_status, r.heartbeat AS claimant_heartbeat
  FROM rm_command_state c
  LEFT JOIN outbox o ON o.event_id = c.event_id AND o.kind = 'command'
  LEFT JOIN runtime r ON r.kind = 'worker_pool' AND r.name = c.worker_id
 WHERE c.execution_id = $1 AND c.status IN ('PENDING', 'CLAIMED', 'RUNNING')
 ORDER BY c.event_id
"""

LIVE_WORKERS_SQL = """
SELECT name, status, heartbeat FROM runtime
 WHERE kind = 'worker_pool' AND status <> 'offline' AND heartbeat > now() - make_interval(secs => $2)
   AND (labels->>'pool' = $1 OR runtime->>'pool' = $1 OR $1 = '')
 ORDER BY name
"""


def pool_of(subject: str | None) -> str:
    """noetl.commands.<pool>.<execution_id> → <pool>."""
    parts = (subject or "").split(".")
    return parts[2] if len(parts) > 3 else ""


async def explain(conn: Conn, execution_id: int, live_seconds: float = 60.0) -> dict[str, Any]:
    """The facts for one execution, JSON-ready."""
    summary = await conn.fetchrow(
        "SELECT status, steps_total, steps_done, steps_failed, last_error, last_event_id "
        "FROM rm_execution_summary WHERE execution_id = $1",
        execution_id,
    )
    pending = []
    for r in await conn.fetch(OPEN_COMMANDS_SQL, execution_id):
        row = dict(r)
        pool = pool_of(row["outbox_subject"])
        workers = await conn.fetch(LIVE_WORKERS_SQL, pool, float(live_seconds))
        row["pool"] = pool
        row["live_workers"] = [dict(w) for w in workers]
        pending.append(row)
    return {
        "execution_id": execution_id,
        "summary": dict(summary) if summary else None,
        "pending_commands": pending,
    }
