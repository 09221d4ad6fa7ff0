"""Apply mirror events to a read model and advance its checkpoint in the same transaction.

The mirror message says *which* execution moved and *how far* the stream is; the events themselves are
read from noetl.event in insertion (seq) order after the model's stored `last_seq`. So a redelivered,
duplicated or reordered message can never fold an event twice or out of order, and the incremental
result is by construction what `replay` computes from the log."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.db.types import Conn
from projections.base import Projection, State, normalise

NEW_EVENTS_SQL = """
SELECT e.event_id, e.execution_id, e.event_type, e.node_name, e.status, e.result, e.meta, e.error,
       e.command_id, e.worker_id, e.created_at, e.seq
  FROM unnest($1::bigint[], $2::bigint[]) AS w(execution_id, after_seq)
  JOIN event e ON e.execution_id = w.execution_id AND (w.after_seq = 0 OR e.seq > w.after_seq)
 ORDER BY e.execution_id, e.seq NULLS FIRST, e.event_id
"""

CHECKPOINT_SQL = """
INSERT INTO projection_checkpoint (projection, shard, version, position, updated_at)
VALUES ($1, $2, $3, $4, now())
ON CONFLICT (projection, shard) DO UPDATE
   SET version = EXCLUDED.version, position = GREATEST(projection_checkpoint.position, EXCLUDED.position),
       updated_at = now()
"""


async def checkpoint(conn: Any, name: str, shard: int = 0) -> int:
    """The stream position a projection has applied up to (0 = nothing); conn may be a pool."""
    value = await conn.fetchval(
        "SELECT position FROM projection_checkpoint WHERE projection = $1 AND shard = $2", name, shard
    )
    return int(value or 0)


def fold_execution(projection: Projection, state: State | None, events: list[dict[str, Any]]) -> State | None:
    """Fold normalised events (seq order) onto a state; last_seq = the highest seq seen."""
    for ev in events:
        if projection.wants(ev):
            state = projection.fold(state, ev)
    if state is not None and events:
        state["last_seq"] = max(int(state.get("last_seq") or 0), *(int(e["seq"] or 0) for e in events))
    return state


def execution_ids(raw_events: list[Mapping[str, Any]]) -> list[int]:
    """Distinct execution ids named by a batch of mirror envelopes."""
    ids = set()
    for raw in raw_events:
        eid = raw.get("execution_id") if isinstance(raw, Mapping) else None
        if eid not in (None, ""):
            ids.add(int(eid))
    return sorted(ids)


async def apply(
    conn: Conn, projection: Projection, raw_events: list[Mapping[str, Any]], position: int, shard: int = 0
) -> int:
    """Bring the executions named by a batch up to date; returns how many new events were folded.

    The caller runs this inside a transaction; a per-projection advisory lock serialises replicas."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('noetl.projection.' || $1))", projection.name)
    ids = execution_ids(raw_events)
    used = 0
    if ids:
        stored = await projection.load(conn, ids)
        after = [int((stored.get(i) or {}).get("last_seq") or 0) for i in ids]
        fresh: dict[int, list[dict[str, Any]]] = {}
        for rec in await conn.fetch(NEW_EVENTS_SQL, ids, after):
            fresh.setdefault(int(rec["execution_id"]), []).append(normalise(rec))
        states: dict[int, State] = {}
        for eid, events in fresh.items():
            used += len(events)
            state = fold_execution(projection, stored.get(eid), events)
            if state is not None:
                states[eid] = state
        if states:
            await projection.save(conn, states)
            await projection.after(conn, states)
    await conn.execute(CHECKPOINT_SQL, projection.name, shard, projection.version, position)
    return used
