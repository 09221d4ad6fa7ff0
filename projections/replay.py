"""`noetl-control-plane replay`: rebuild read models and the synchronous projections from noetl.event."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from app.domain import ExecutionState, fold_into
from app.services.events_rows import row_for_engine
from projections.base import Projection, normalise
from projections.registry import READ_MODELS, SYNC_PROJECTIONS
from projections.runner import fold_execution
from projections.sync import rebuild_commands, rebuild_executions

CHUNK = 5000

# `context` is only a fallback for a payload missing from `result.context` (app/domain/fold.py), and decoding
# jsonb dominates a replay, so it is streamed only where it can be read.
STREAM_SQL = """
SELECT event_id, execution_id, event_type, node_name, node_type, status, result,
       CASE WHEN jsonb_typeof(result->'context') = 'object' THEN NULL ELSE context END AS context, meta, error,
       command_id, worker_id, parent_event_id, parent_execution_id, catalog_id, created_at, seq
  FROM event {where} ORDER BY execution_id, event_id
"""


@dataclass
class ReplayReport:
    projections: list[str]
    executions: int = 0
    events: int = 0
    seconds: float = 0.0
    per_projection: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        rate = self.events / self.seconds if self.seconds else 0.0
        return {
            "projections": self.projections,
            "executions": self.executions,
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(rate),
        }


def selected(name: str | None) -> list[str]:
    """Projection names to rebuild; unknown → ValueError naming the valid ones."""
    every = [*READ_MODELS, *SYNC_PROJECTIONS]
    if name is None:
        return every
    if name not in every:
        raise ValueError(f"unknown projection {name!r}; one of: {', '.join(every)}")
    return [name]


async def _flush(conn: asyncpg.Connection, names: list[str], batch: dict[int, list[asyncpg.Record]]) -> None:
    if not batch:
        return
    models = [READ_MODELS[n] for n in names if n in READ_MODELS]
    normalised = {eid: [normalise(r) for r in _by_seq(rows)] for eid, rows in batch.items()} if models else {}
    for model in models:
        states = {}
        for eid, evs in normalised.items():
            st = fold_execution(model, None, evs)
            if st is not None:
                states[eid] = st
        await model.save(conn, states)
        await model.after(conn, states)
    if "command" in names:
        await rebuild_commands(conn, {eid: _by_seq(rows) for eid, rows in batch.items()})
    if "execution" in names:
        await rebuild_executions(conn, [(eid, *_state_of(_by_seq(rows))) for eid, rows in batch.items()])


def _by_seq(rows: list[asyncpg.Record]) -> list[asyncpg.Record]:
    """Insertion (commit) order; rows of older servers without seq fall back to event_id order."""
    return sorted(rows, key=lambda r: (r["seq"] is None, r["seq"] or 0, r["event_id"]))


def _state_of(rows: Iterable[asyncpg.Record]) -> tuple[ExecutionState, int]:
    """The orchestrator's state as it folded these events (seq order), and the seq it stopped at.

    The orchestrator stops at the terminal event: later stragglers are stored but never folded."""
    state = ExecutionState()
    last_seq = 0
    for rec in rows:
        fold_into(state, row_for_engine(rec))
        last_seq = max(last_seq, int(rec["seq"] or 0))
        if state.terminal is not None:
            break
    return state, last_seq


async def replay(
    conn: asyncpg.Connection, projection: str | None = None, execution_id: int | None = None
) -> ReplayReport:
    """Rebuild in one transaction: delete the read models' rows, fold the log, write them back."""
    names = selected(projection)
    report = ReplayReport(names)
    start = time.perf_counter()
    ids = [execution_id] if execution_id is not None else None
    async with conn.transaction():
        for name in names:
            if name in READ_MODELS:
                await _delete(READ_MODELS[name], conn, ids)
        where, args = ("WHERE execution_id = $1", [execution_id]) if execution_id is not None else ("", [])
        batch: dict[int, list[asyncpg.Record]] = {}
        pending = 0
        async for rec in conn.cursor(STREAM_SQL.format(where=where), *args, prefetch=CHUNK):
            eid = int(rec["execution_id"])
            if eid not in batch and pending >= CHUNK:
                await _flush(conn, names, batch)
                batch, pending = {}, 0
            if eid not in batch:
                report.executions += 1
            batch.setdefault(eid, []).append(rec)
            pending += 1
            report.events += 1
        await _flush(conn, names, batch)
    report.seconds = time.perf_counter() - start
    return report


async def _delete(model: Projection, conn: asyncpg.Connection, ids: list[int] | None) -> None:
    await model.delete(conn, ids)
