"""The durable secret-audit trail: inserts for the wallet's AuditSink and the query route (secrets.md §6.3, §3.6)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.db.types import Executor
from app.secrets.audit import AuditEvent

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000

INSERT_SQL = """
INSERT INTO secret_audit (audit_id, occurred_at, credential, operation, outcome, worker_id, execution_id,
                          parent_execution_id, server_region, broker_region, kek_version, notes)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (audit_id) DO NOTHING
"""

QUERY_SQL = """
SELECT audit_id, occurred_at, credential, operation, outcome, worker_id, execution_id, parent_execution_id,
       server_region, broker_region, kek_version, notes
  FROM secret_audit
 WHERE ($1::text IS NULL OR credential = $1)
   AND ($2::bigint IS NULL OR execution_id = $2)
   AND ($3::text IS NULL OR outcome = $3)
   AND ($4::timestamptz IS NULL OR occurred_at >= $4)
   AND ($5::timestamptz IS NULL OR occurred_at < $5)
 ORDER BY occurred_at DESC, audit_id DESC
 LIMIT $6
"""


async def insert(db: Executor, ev: AuditEvent) -> None:
    """Write one audit row (idempotent on ``audit_id``)."""
    await db.execute(
        INSERT_SQL,
        ev.audit_id,
        ev.occurred_at,
        ev.credential,
        ev.operation,
        ev.outcome,
        ev.worker_id,
        ev.execution_id,
        ev.parent_execution_id,
        ev.server_region,
        ev.broker_region,
        ev.kek_version,
        ev.notes,
    )


def clamp_limit(limit: int | None) -> int:
    """Default 100, clamped to [1, 10000]."""
    return min(max(DEFAULT_LIMIT if limit is None else limit, 1), MAX_LIMIT)


async def query(
    db: Executor,
    *,
    credential: str | None = None,
    execution_id: int | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """``{"rows": [AuditEvent…]}`` newest first; ``since`` inclusive, ``until`` exclusive."""
    rows = await db.fetch(QUERY_SQL, credential, execution_id, outcome, since, until, clamp_limit(limit))
    return {"rows": [AuditEvent(**dict(r)).to_dict() for r in rows]}
