"""Per-playbook statistics: runs, failures, p50/p95 duration (rm_playbook_run → rm_playbook_stats)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.db.types import Conn
from app.services.eventlog import STARTED_TYPES, TERMINAL_TYPES, terminal_status
from projections.base import Projection, State, as_time, iso, load_states

UPSERT_RUNS_SQL = """
INSERT INTO rm_playbook_run (execution_id, path, status, started_at, ended_at, duration_s, last_event_id, last_seq)
SELECT (r->>'execution_id')::bigint, r->>'path', r->>'status', (r->>'started_at')::timestamptz,
       (r->>'ended_at')::timestamptz, (r->>'duration_s')::float8, (r->>'last_event_id')::bigint, (r->>'last_seq')::bigint
  FROM jsonb_array_elements($1::jsonb) r
ON CONFLICT (execution_id) DO UPDATE SET path = EXCLUDED.path, status = EXCLUDED.status,
   started_at = EXCLUDED.started_at, ended_at = EXCLUDED.ended_at, duration_s = EXCLUDED.duration_s,
   last_event_id = EXCLUDED.last_event_id, last_seq = EXCLUDED.last_seq
"""

# Recomputed from the per-run rows, so the aggregate never depends on the order events arrived in.
REFRESH_STATS_SQL = """
WITH agg AS (
    SELECT path, count(*)::int AS runs,
           count(*) FILTER (WHERE status = 'COMPLETED')::int AS completed,
           count(*) FILTER (WHERE status = 'FAILED')::int AS failures,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_s) AS p50,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_s) AS p95
      FROM rm_playbook_run WHERE path = ANY($1::text[]) GROUP BY path
)
INSERT INTO rm_playbook_stats (path, runs, completed, failures, p50_duration_s, p95_duration_s, updated_at)
SELECT path, runs, completed, failures, p50, p95, now() FROM agg
ON CONFLICT (path) DO UPDATE SET runs = EXCLUDED.runs, completed = EXCLUDED.completed,
   failures = EXCLUDED.failures, p50_duration_s = EXCLUDED.p50_duration_s,
   p95_duration_s = EXCLUDED.p95_duration_s, updated_at = now()
"""


class PlaybookStats(Projection):
    name = "playbook_stats"
    version = 1
    handles = STARTED_TYPES | TERMINAL_TYPES

    def fold(self, state: State | None, event: Mapping[str, Any]) -> State:
        st: State = state or {
            "execution_id": event["execution_id"],
            "path": None,
            "status": "RUNNING",
            "started_at": None,
            "ended_at": None,
            "duration_s": None,
            "last_event_id": 0,
        }
        st["last_event_id"] = max(int(st["last_event_id"]), int(event["event_id"]))
        at = iso(event["created_at"])
        if event["event_type"] in STARTED_TYPES:
            ctx = (event.get("result") or {}).get("context") or {}
            st["path"] = (ctx.get("path") if isinstance(ctx, Mapping) else None) or event.get("node_name")
            st["started_at"] = st["started_at"] or at
        else:
            st["status"] = terminal_status(event["event_type"]) or st["status"]
            st["ended_at"] = at
            a, b = as_time(st["started_at"]), as_time(at)
            st["duration_s"] = round((b - a).total_seconds(), 6) if a and b else None
        return st

    async def load(self, conn: Conn, execution_ids: list[int]) -> dict[int, State]:
        return await load_states(
            conn,
            "SELECT execution_id, path, status, started_at, ended_at, duration_s, last_event_id, last_seq "
            "FROM rm_playbook_run WHERE execution_id = ANY($1::bigint[])",
            execution_ids,
        )

    async def save(self, conn: Conn, states: Mapping[int, State]) -> None:
        if states:
            await conn.execute(UPSERT_RUNS_SQL, list(states.values()))

    async def after(self, conn: Conn, states: Mapping[int, State]) -> None:
        paths = sorted({s["path"] for s in states.values() if s.get("path")})
        if paths:
            await conn.execute(REFRESH_STATS_SQL, paths)

    async def delete(self, conn: Conn, execution_ids: list[int] | None) -> None:
        if execution_ids is None:
            await conn.execute("DELETE FROM rm_playbook_run")
            await conn.execute("DELETE FROM rm_playbook_stats")
            return
        paths = await conn.fetch(
            "DELETE FROM rm_playbook_run WHERE execution_id = ANY($1::bigint[]) RETURNING path", execution_ids
        )
        names = sorted({r["path"] for r in paths if r["path"]})
        if names:
            await conn.execute("DELETE FROM rm_playbook_stats WHERE path = ANY($1::text[])", names)
            await conn.execute(REFRESH_STATS_SQL, names)
