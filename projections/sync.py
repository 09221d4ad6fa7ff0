"""Rebuilding the synchronous projections noetl.command and noetl.execution from the log.

The API writes both in the transaction of the events; this is the recovery path when they are lost or
suspected wrong. Columns the log does not determine (wall-clock timestamps, the command context written
at issue time) are kept where a row exists."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from app.domain import ExecutionState
from app.services.events import _error_text as error_text
from app.services.events import effective_type

TERMINAL = {"command.completed": "COMPLETED", "command.failed": "FAILED", "command.cancelled": "CANCELLED"}
DONE = frozenset(TERMINAL.values())

UPSERT_COMMANDS_SQL = """
INSERT INTO command (command_id, event_id, execution_id, catalog_id, parent_execution_id, step_name, tool_kind,
                     status, worker_id, context, meta, latest_event_id, result, error)
SELECT (r->>'command_id')::bigint, (r->>'event_id')::bigint, (r->>'execution_id')::bigint,
       (r->>'catalog_id')::bigint, (r->>'parent_execution_id')::bigint, r->>'step_name', r->>'tool_kind',
       r->>'status', r->>'worker_id', r->'context', r->'meta', (r->>'latest_event_id')::bigint,
       NULLIF(r->'result', 'null'::jsonb), r->>'error'
  FROM jsonb_array_elements($1::jsonb) r
ON CONFLICT (execution_id, command_id) DO UPDATE SET status = EXCLUDED.status, worker_id = EXCLUDED.worker_id,
   latest_event_id = EXCLUDED.latest_event_id, result = EXCLUDED.result, error = EXCLUDED.error,
   updated_at = now()
"""

UPDATE_EXECUTIONS_SQL = """
UPDATE execution e
   SET status = CASE WHEN e.status = 'CANCELLED' AND r->>'status' = 'RUNNING' THEN e.status ELSE r->>'status' END,
       state = r->'state', state_seq = (r->>'state_seq')::bigint, updated_at = now()
  FROM jsonb_array_elements($1::jsonb) r
 WHERE e.execution_id = (r->>'execution_id')::bigint
"""


def _cid(rec: Any) -> int | None:
    cid = rec.get("command_id")
    meta = rec.get("meta") or {}
    if cid is None and isinstance(meta, Mapping):
        cid = meta.get("command_id")
    return int(cid) if cid not in (None, "") else None


def command_rows(rows: list[asyncpg.Record]) -> dict[int, dict[str, Any]]:
    """Fold one execution's events (seq order) into its command rows, as the ingest path updates them."""
    cmds: dict[int, dict[str, Any]] = {}
    for rec in rows:
        cid = _cid(rec)
        if cid is None:
            continue
        etype = rec["event_type"]
        if etype == "command.issued":
            ctx = (rec["result"] or {}).get("context")
            cmds[cid] = {
                "command_id": cid,
                "event_id": rec["event_id"],
                "execution_id": rec["execution_id"],
                "catalog_id": rec["catalog_id"],
                "parent_execution_id": rec["parent_execution_id"],
                "step_name": rec["node_name"],
                "tool_kind": rec["node_type"],
                "status": "PENDING",
                "worker_id": None,
                "context": ctx if isinstance(ctx, dict) else None,
                "meta": rec["meta"],
                "latest_event_id": rec["event_id"],
                "result": None,
                "error": None,
            }
            continue
        cmd = cmds.get(cid)
        if cmd is None:
            continue
        if etype == "command.claimed":
            if cmd["status"] not in DONE:
                cmd.update(status="CLAIMED", worker_id=rec["worker_id"], latest_event_id=rec["event_id"])
        elif etype == "command.started":
            if cmd["status"] not in DONE:
                cmd.update(status="RUNNING", latest_event_id=rec["event_id"])
        elif etype in TERMINAL:
            # Exactly the ingest path's rule (app/services/events.py _project_command).
            payload = (rec["result"] or {}).get("context")
            producer = (rec["meta"] or {}).get("producer_status")
            final = TERMINAL[etype]
            if effective_type(etype, producer, payload) == "command.failed":
                final = "FAILED"
            res = payload.get("result") if isinstance(payload, dict) else None
            cmd.update(
                status=final,
                latest_event_id=rec["event_id"],
                result=res if isinstance(res, dict) else None,
                error=error_text(payload) if final == "FAILED" else None,
            )
        else:
            cmd["latest_event_id"] = rec["event_id"]
    return cmds


async def rebuild_commands(conn: asyncpg.Connection, batch: Mapping[int, list[asyncpg.Record]]) -> None:
    """Upsert the command rows of these executions from their events."""
    rows = [c for recs in batch.values() for c in command_rows(recs).values()]
    if rows:
        await conn.execute(UPSERT_COMMANDS_SQL, rows)


async def rebuild_executions(conn: asyncpg.Connection, folded: list[tuple[int, ExecutionState, int]]) -> None:
    """Status and orchestration state of existing execution rows from their folds, in one statement."""
    rows = [
        {
            "execution_id": eid,
            "status": state.terminal or "RUNNING",
            "state": state.to_dict(),
            "state_seq": seq,
        }
        for eid, state, seq in folded
    ]
    if rows:
        await conn.execute(UPDATE_EXECUTIONS_SQL, rows)
