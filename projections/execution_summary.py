"""Execution summary read model: step progress, durations, last error (rm_execution_summary)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.db.types import Conn
from app.services.eventlog import STARTED_TYPES, terminal_status
from projections.base import Projection, State, as_time, error_of, iso, load_states

COLUMNS = (
    "execution_id, path, status, steps, steps_total, steps_done, steps_failed, started_at, ended_at, "
    "duration_s, last_error, last_event_id, events, last_seq"
)

UPSERT_SQL = f"""
INSERT INTO rm_execution_summary ({COLUMNS}, updated_at)
SELECT (r->>'execution_id')::bigint, r->>'path', r->>'status', r->'steps', (r->>'steps_total')::int,
       (r->>'steps_done')::int, (r->>'steps_failed')::int, (r->>'started_at')::timestamptz,
       (r->>'ended_at')::timestamptz, (r->>'duration_s')::float8, r->>'last_error',
       (r->>'last_event_id')::bigint, (r->>'events')::int, (r->>'last_seq')::bigint, now()
  FROM jsonb_array_elements($1::jsonb) r
ON CONFLICT (execution_id) DO UPDATE SET path = EXCLUDED.path, status = EXCLUDED.status, steps = EXCLUDED.steps,
   steps_total = EXCLUDED.steps_total, steps_done = EXCLUDED.steps_done, steps_failed = EXCLUDED.steps_failed,
   started_at = EXCLUDED.started_at, ended_at = EXCLUDED.ended_at, duration_s = EXCLUDED.duration_s,
   last_error = EXCLUDED.last_error, last_event_id = EXCLUDED.last_event_id, events = EXCLUDED.events, last_seq = EXCLUDED.last_seq,
   updated_at = now()
"""


def _span(start: Any, end: Any) -> float | None:
    a, b = as_time(start), as_time(end)
    return round((b - a).total_seconds(), 6) if a is not None and b is not None else None


class ExecutionSummary(Projection):
    name = "execution_summary"
    version = 1

    def fold(self, state: State | None, event: Mapping[str, Any]) -> State:
        st: State = state or {
            "execution_id": event["execution_id"],
            "path": None,
            "status": "RUNNING",
            "steps": {},
            "started_at": None,
            "ended_at": None,
            "duration_s": None,
            "last_error": None,
            "last_event_id": 0,
            "events": 0,
        }
        st["last_event_id"] = max(int(st["last_event_id"]), int(event["event_id"]))
        st["events"] = int(st["events"]) + 1
        etype, at, name = event["event_type"], iso(event["created_at"]), event.get("node_name")
        ctx = (event.get("result") or {}).get("context") or {}
        if etype in STARTED_TYPES:
            st["path"] = (ctx.get("path") if isinstance(ctx, Mapping) else None) or name
            st["started_at"] = st["started_at"] or at
        elif terminal_status(etype):
            st["status"] = terminal_status(etype)
            st["ended_at"] = at
            st["duration_s"] = _span(st["started_at"], at)
            # The terminal event only summarises ("Failed steps: x"); the step's own error is the cause.
            st["last_error"] = st["last_error"] or error_of(event)
        elif etype == "step.enter" and name:
            st["steps"][name] = {"status": "running", "started_at": at, "ended_at": None, "duration_s": None}
        elif etype == "step.exit" and name:
            step = st["steps"].setdefault(name, {"status": "running", "started_at": None})
            ok = str(event.get("status") or "").upper() == "COMPLETED"
            step.update(status="completed" if ok else "failed", ended_at=at)
            step["duration_s"] = _span(step.get("started_at"), at)
            if not ok:
                st["last_error"] = error_of(event) or st["last_error"]
        elif etype in ("command.failed", "call.error"):
            st["last_error"] = error_of(event) or st["last_error"]
        steps = st["steps"].values()
        st["steps_total"] = len(st["steps"])
        st["steps_done"] = sum(1 for s in steps if s["status"] == "completed")
        st["steps_failed"] = sum(1 for s in steps if s["status"] == "failed")
        return st

    async def load(self, conn: Conn, execution_ids: list[int]) -> dict[int, State]:
        return await load_states(
            conn,
            f"SELECT {COLUMNS} FROM rm_execution_summary WHERE execution_id = ANY($1::bigint[])",
            execution_ids,
        )

    async def save(self, conn: Conn, states: Mapping[int, State]) -> None:
        if states:
            await conn.execute(UPSERT_SQL, list(states.values()))

    async def delete(self, conn: Conn, execution_ids: list[int] | None) -> None:
        if execution_ids is None:
            await conn.execute("DELETE FROM rm_execution_summary")
        else:
            await conn.execute(
                "DELETE FROM rm_execution_summary WHERE execution_id = ANY($1::bigint[])", execution_ids
            )
