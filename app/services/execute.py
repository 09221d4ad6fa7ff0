"""Starting executions (server-contract §4.1, §4.11): catalog lookup, the engine's start, one transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.bootstrap import Deps
from app.domain import start
from app.errors import NotFound, ValidationFailed
from app.services import catalog
from app.services.locks import lock_execution
from app.services.orchestration import playbooks, write_decision

INSERT_EXECUTION_SQL = """
INSERT INTO execution (execution_id, catalog_id, parent_execution_id, status, last_event_type, last_node_name,
                       last_event_id, start_time, end_time, error, path, version, workload, state, state_seq,
                       created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
        (SELECT COALESCE(max(seq), 0) FROM event WHERE execution_id = $1), now(), now())
"""


def _int_or_none(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValidationFailed(f"{name} must be an integer id (got {value!r})") from None


async def start_execution(deps: Deps, req: dict[str, Any]) -> dict[str, Any]:
    """Create the execution, its start events and first commands; publish after commit."""
    path = req.get("path")
    catalog_id = _int_or_none(req.get("catalog_id"), "catalog_id")
    if catalog_id is None and not path:
        raise ValidationFailed("path or catalog_id is required")
    kind = req.get("resource_kind")
    if kind is not None and str(kind).lower() not in catalog.EXECUTABLE:
        raise ValidationFailed(f"resource_kind {kind!r} is not executable (playbook or agent)")
    workload = req.get("workload")
    payload = req.get("payload")
    for name, value in (("workload", workload), ("payload", payload)):
        if value is not None and not isinstance(value, dict):
            raise ValidationFailed(f"{name} must be an object")
    parent = _int_or_none(req.get("parent_execution_id"), "parent_execution_id")
    row = await catalog.find(deps.pool, catalog_id, path, req.get("version"))
    if row is None:
        deps.metrics.execute_outcomes.labels("not_found").inc()
        raise NotFound(f"Playbook not found: {path if path else catalog_id}")
    if str(row["kind"]).lower() not in catalog.EXECUTABLE:
        raise ValidationFailed(f"catalog entry {row['path']} is a {row['kind']}, which is not executable")
    cat = await playbooks(deps).get(deps.pool, row["catalog_id"])
    override = {**(workload or {}), **(payload or {})}
    execution_id = deps.ids.next_id()
    now = datetime.now(UTC)
    pool = req.get("execution_pool") or None
    decision = start(
        cat.playbook,
        execution_id=execution_id,
        catalog_id=cat.catalog_id,
        path=cat.path,
        version=cat.version,
        workload_override=override,
        parent_execution_id=parent,
        execution_pool=pool,
        trace=req.get("trace") if isinstance(req.get("trace"), dict) else None,
        server_url=deps.settings.server.server_url,
        next_id=deps.ids.next_id,
        now=now,
    )
    status = decision.terminal or "RUNNING"
    last = decision.events[-1]
    error = next((e.error for e in decision.events if e.event_type == "playbook.failed"), None)
    async with deps.pool.acquire() as conn, conn.transaction():
        await lock_execution(conn, execution_id)
        await write_decision(conn, deps, execution_id, cat.catalog_id, cat.path, pool, parent, decision, now)
        await conn.execute(
            INSERT_EXECUTION_SQL,
            execution_id,
            cat.catalog_id,
            parent,
            status,
            last.event_type,
            last.node_name,
            last.event_id,
            now,
            now if decision.terminal else None,
            error,
            cat.path,
            cat.version,
            {**cat.playbook.workload, **override},
            decision.state.to_dict(),
        )
    deps.signal_outbox()
    deps.metrics.execute_outcomes.labels("started").inc()
    return {
        "execution_id": str(execution_id),
        "status": "started",
        "commands_generated": len(decision.commands),
        "path": cat.path,
        "name": cat.path.rsplit("/", 1)[-1],
        "resource_kind": row["kind"],
    }


async def rerun(deps: Deps, execution_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """A new execution of the same catalog entry with the original workload overlaid by `workload`."""
    row = await deps.pool.fetchrow(
        "SELECT catalog_id, workload FROM execution WHERE execution_id = $1", execution_id
    )
    if row is None:
        raise NotFound(f"execution not found: {execution_id}")
    extra = body.get("workload")
    if extra is not None and not isinstance(extra, dict):
        raise ValidationFailed("workload must be an object")
    workload = {**(row["workload"] or {}), **(extra or {})}
    return await start_execution(
        deps,
        {"catalog_id": row["catalog_id"], "workload": workload, "resource_kind": body.get("resource_kind")},
    )
