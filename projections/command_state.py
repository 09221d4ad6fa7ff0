"""Command facts for explaining a stuck execution (rm_command_state); see projections/stuck.py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.db.types import Conn
from projections.base import Projection, State, iso

TERMINAL = {"command.completed": "COMPLETED", "command.failed": "FAILED", "command.cancelled": "CANCELLED"}

UPSERT_SQL = """
INSERT INTO rm_command_state (execution_id, command_id, event_id, step_name, status, worker_id, issued_at,
                              claimed_at, last_event_id, last_seq)
SELECT (r->>'execution_id')::bigint, (r->>'command_id')::bigint, (r->>'event_id')::bigint, r->>'step_name',
       r->>'status', r->>'worker_id', (r->>'issued_at')::timestamptz, (r->>'claimed_at')::timestamptz,
       (r->>'last_event_id')::bigint, (r->>'last_seq')::bigint
  FROM jsonb_array_elements($1::jsonb) r
ON CONFLICT (execution_id, command_id) DO UPDATE SET event_id = EXCLUDED.event_id,
   step_name = EXCLUDED.step_name, status = EXCLUDED.status, worker_id = EXCLUDED.worker_id,
   issued_at = EXCLUDED.issued_at, claimed_at = EXCLUDED.claimed_at, last_event_id = EXCLUDED.last_event_id,
   last_seq = EXCLUDED.last_seq
"""


class CommandState(Projection):
    name = "command_state"
    version = 1
    handles = frozenset({"command.issued", "command.claimed", "command.started", *TERMINAL})

    def fold(self, state: State | None, event: Mapping[str, Any]) -> State:
        st: State = state or {"execution_id": event["execution_id"], "commands": {}, "last_event_id": 0}
        eid = int(event["event_id"])
        st["last_event_id"] = max(int(st["last_event_id"]), eid)
        cid = event.get("command_id")
        if cid is None:
            return st
        key = str(cid)
        cmd = st["commands"].setdefault(
            key,
            {
                "execution_id": event["execution_id"],
                "command_id": int(cid),
                "event_id": eid,
                "step_name": event.get("node_name"),
                "status": "PENDING",
                "worker_id": None,
                "issued_at": None,
                "claimed_at": None,
                "last_event_id": 0,
            },
        )
        cmd["last_event_id"] = max(int(cmd["last_event_id"]), eid)
        etype, at = event["event_type"], iso(event["created_at"])
        done = cmd["status"] in TERMINAL.values()
        if etype == "command.issued":
            cmd.update(event_id=eid, step_name=event.get("node_name"), issued_at=at)
        elif etype == "command.claimed" and not done:
            cmd.update(status="CLAIMED", worker_id=event.get("worker_id"), claimed_at=at)
        elif etype == "command.started" and not done:
            cmd["status"] = "RUNNING"
            cmd["worker_id"] = cmd["worker_id"] or event.get("worker_id")
        elif etype in TERMINAL:
            failed = str(event.get("status") or "").upper() == "FAILED"
            cmd["status"] = "FAILED" if failed else TERMINAL[etype]
        return st

    async def load(self, conn: Conn, execution_ids: list[int]) -> dict[int, State]:
        rows = await conn.fetch(
            "SELECT execution_id, command_id, event_id, step_name, status, worker_id, issued_at, claimed_at, "
            "last_event_id, last_seq FROM rm_command_state WHERE execution_id = ANY($1::bigint[])",
            execution_ids,
        )
        out: dict[int, State] = {}
        for r in rows:
            d = dict(r)
            d["issued_at"], d["claimed_at"] = iso(d["issued_at"]), iso(d["claimed_at"])
            st = out.setdefault(int(r["execution_id"]), {"execution_id": r["execution_id"], "commands": {}})
            st["commands"][str(r["command_id"])] = d
            st["last_event_id"] = max(int(st.get("last_event_id", 0)), int(r["last_event_id"]))
            st["last_seq"] = max(int(st.get("last_seq", 0)), int(r["last_seq"]))
        return out

    async def save(self, conn: Conn, states: Mapping[int, State]) -> None:
        rows = [
            {**c, "last_seq": s.get("last_seq", 0)} for s in states.values() for c in s["commands"].values()
        ]
        if rows:
            await conn.execute(UPSERT_SQL, rows)

    async def delete(self, conn: Conn, execution_ids: list[int] | None) -> None:
        if execution_ids is None:
            await conn.execute("DELETE FROM rm_command_state")
        else:
            await conn.execute(
                "DELETE FROM rm_command_state WHERE execution_id = ANY($1::bigint[])", execution_ids
            )
