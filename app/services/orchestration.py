"""One orchestration pass: load state, run the pure engine, write its events, commands and outbox rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.bootstrap import Deps
from app.db.types import Conn
from app.domain import Decision, ExecutionState, NewCommand, decide, fold
from app.services.eventlog import TRIGGER_TYPES, mirror_rows, naive_utc, terminal_status
from app.services.events_rows import row_for_engine
from app.services.playbooks import PlaybookCache
from app.sharding import shard_for
from app.store.rows import insert_decision

EXECUTION_STATE_SQL = """
SELECT catalog_id, status, state, state_seq, parent_execution_id FROM execution WHERE execution_id = $1
"""

NEW_EVENTS_SQL = """
SELECT event_id, event_type, node_id, node_name, node_type, status, result, context, meta, error,
       parent_event_id, parent_execution_id, command_id, worker_id, created_at, seq
  FROM event WHERE execution_id = $1 AND seq > $2 ORDER BY seq
"""

UPDATE_EXECUTION_SQL = """
UPDATE execution SET status = CASE WHEN status IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN status ELSE $2 END,
       state = $3, state_seq = $4, last_event_id = GREATEST(COALESCE(last_event_id, 0), $5),
       last_event_type = COALESCE($6, last_event_type), last_node_name = COALESCE($7, last_node_name),
       end_time = CASE WHEN $8 THEN COALESCE(end_time, now()) ELSE end_time END,
       error = COALESCE($9, error), result = COALESCE($10, result), updated_at = now()
 WHERE execution_id = $1
"""


def playbooks(deps: Deps) -> PlaybookCache:
    """The process-wide parsed playbook cache."""
    cache = deps.extras.get("playbooks")
    if cache is None:
        cache = deps.extras["playbooks"] = PlaybookCache()
    return cache  # type: ignore[no-any-return]


def pool_for(state_pool: str | None, path: str) -> str:
    """Pool segment: execution_pool → system/ → subscription/ → shared (§12.3)."""
    if state_pool:
        return state_pool
    if path.startswith("system/"):
        return "system"
    if path.startswith("subscription/"):
        return "subscription"
    return "shared"


def command_subject(deps: Deps, pool: str, execution_id: int) -> str:
    """noetl.commands.<pool>.<execution_id>, or the sharded system subject when routing is on."""
    n = deps.settings.nats
    if pool == "system" and n.shard_subject_route and n.command_shard_count > 1:
        return f"{n.subject}.system.shard.{shard_for(execution_id, n.command_shard_count)}.{execution_id}"
    return f"{n.subject}.{pool}.{execution_id}"


async def write_decision(
    conn: Conn,
    deps: Deps,
    execution_id: int,
    catalog_id: int,
    path: str,
    state_pool: str | None,
    parent_execution_id: int | None,
    decision: Decision,
    now: datetime,
    execution_update: tuple[Any, ...] | None = None,
) -> int:
    """Events (+ mirror rows), command rows and notifications in the caller's transaction; the max seq.

    `execution_update` (UPDATE_EXECUTION_SQL's arguments) folds the execution row update into the
    same statement."""
    created = naive_utc(now)
    rows = []
    for ev in decision.events:
        row = ev.to_row()
        row.update(execution_id=execution_id, catalog_id=catalog_id, created_at=created)
        pe = row.get("parent_execution_id")
        row["parent_execution_id"] = int(pe) if pe not in (None, "") else None
        rows.append(row)
    cmd_rows, notifications = _command_rows(
        deps, execution_id, catalog_id, path, state_pool, parent_execution_id, decision.commands
    )
    seqs = await insert_decision(
        conn, rows, mirror_rows(deps.settings, rows, now), cmd_rows, notifications, execution_update
    )
    return max(seqs.values(), default=0)


def _command_rows(
    deps: Deps,
    execution_id: int,
    catalog_id: int,
    path: str,
    state_pool: str | None,
    parent_execution_id: int | None,
    commands: list[NewCommand],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Command projection rows and their notification outbox rows."""
    pool = pool_for(state_pool, path)
    subject = command_subject(deps, pool, execution_id)
    server_url = deps.settings.server.server_url
    cmd_rows, outbox_rows = [], []
    for c in commands:
        meta = c.meta
        cmd_rows.append(
            {
                "command_id": c.command_id,
                "event_id": c.event_id,
                "execution_id": execution_id,
                "catalog_id": catalog_id,
                "parent_execution_id": parent_execution_id,
                "step_name": c.step,
                "tool_kind": c.tool_kind,
                "status": "PENDING",
                "context": c.context,
                "meta": meta,
                "loop_event_id": str(meta["loop_event_id"])
                if meta.get("loop_event_id") is not None
                else None,
                "iter_index": meta.get("iteration_index"),
                "latest_event_id": c.event_id,
                "prev_event_id": None,
            }
        )
        note: dict[str, Any] = {
            "execution_id": execution_id,
            "event_id": c.event_id,
            "command_id": c.command_id,
            "step": c.step,
            "server_url": server_url,
            "execution_pool": pool,
        }
        if meta.get("trace"):
            note["trace"] = meta["trace"]
        outbox_rows.append(
            {
                "execution_id": execution_id,
                "event_id": c.event_id,
                "kind": "command",
                "subject": subject,
                "payload": note,
                "payload_codec": "json",
            }
        )
        deps.metrics.command_publish.labels("outbox", pool).inc()
    return cmd_rows, outbox_rows


def _summary(decision: Decision) -> tuple[str, int, str | None, str | None, str | None, Any]:
    """(status, last event id, last type, last node, error, result) for the execution row."""
    status = decision.terminal or "RUNNING"
    last = decision.events[-1] if decision.events else None
    error = None
    result = None
    for ev in decision.events:
        term = terminal_status(ev.event_type)
        if term == "FAILED":
            error = ev.error or error
        if term == "COMPLETED":
            ctx = (ev.result or {}).get("context") or {}
            result = ctx.get("result") if isinstance(ctx, dict) else None
    return (
        status,
        last.event_id if last else 0,
        last.event_type if last else None,
        last.node_name if last else None,
        error,
        result,
    )


async def orchestrate_locked(
    conn: Conn,
    deps: Deps,
    execution_id: int,
    now: datetime | None = None,
    prefetched: Any = None,
    new_rows: list[Any] | None = None,
) -> int:
    """Fold events stored since the cached state and run a pass per trigger; returns commands issued.

    The caller holds the execution lock inside an open transaction. `prefetched` is the execution row
    (EXECUTION_STATE_SQL) and `new_rows` the events with seq > its state_seq (NEW_EVENTS_SQL), when the
    caller already read them in its own statements."""
    now = now or datetime.now(UTC)
    ex = prefetched if prefetched is not None else await conn.fetchrow(EXECUTION_STATE_SQL, execution_id)
    if ex is None:
        return 0
    if ex["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
        return 0  # late completions of terminal executions are recorded, never orchestrated
    cat = await playbooks(deps).get(conn, ex["catalog_id"])
    state = ExecutionState.from_dict(ex["state"]) if ex["state"] else ExecutionState()
    rows = (
        new_rows if new_rows is not None else await conn.fetch(NEW_EVENTS_SQL, execution_id, ex["state_seq"])
    )
    if not rows:
        return 0
    generated = 0
    last_decision: Decision | None = None
    parent = ex["parent_execution_id"]
    max_seq = max(int(r["seq"] or 0) for r in rows)
    # The latest decision is written last, with the execution row update in its statement.
    pending: tuple[Decision, str | None] | None = None  # with the pool as of its pass
    for rec in rows:
        row = row_for_engine(rec)
        if rec["event_type"] in TRIGGER_TYPES or rec["event_type"] == "call.done":
            d = decide(
                cat.playbook,
                state,
                row,
                server_url=deps.settings.server.server_url,
                next_id=deps.ids.next_id,
                now=now,
            )
            if d.events or d.commands:
                if pending is not None:
                    written = await write_decision(
                        conn,
                        deps,
                        execution_id,
                        cat.catalog_id,
                        cat.path,
                        pending[1],
                        parent,
                        pending[0],
                        now,
                    )
                    max_seq = max(max_seq, written)
                pending = (d, state.execution_pool)
                generated += len(d.commands)
                last_decision = d
            state = d.state
        else:
            state = fold(state, row)
    status, last_id, last_type, last_node, error, result = (
        _summary(last_decision)
        if last_decision
        else (
            state.terminal or "RUNNING",
            rows[-1]["event_id"],
            rows[-1]["event_type"],
            rows[-1]["node_name"],
            None,
            None,
        )
    )
    terminal = status in ("COMPLETED", "FAILED", "CANCELLED")
    update = (
        execution_id,
        status,
        state.to_dict(),
        max_seq or 0,
        last_id,
        last_type,
        last_node,
        terminal,
        error,
        result,
    )
    if pending is not None:
        await write_decision(
            conn, deps, execution_id, cat.catalog_id, cat.path, pending[1], parent, pending[0], now, update
        )
    else:
        await conn.execute(UPDATE_EXECUTION_SQL, *update)
    return generated
