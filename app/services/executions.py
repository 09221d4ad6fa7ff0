"""Execution read models: status union, detail, list, events, cancellation check (server-contract §4)."""

from __future__ import annotations

from typing import Any

from app.bootstrap import Deps
from app.domain import ExecutionState, derive_status
from app.errors import NotFound, ValidationFailed
from app.services.eventlog import TERMINAL_TYPES, terminal_status
from app.services.events_rows import row_for_engine
from app.timefmt import duration_human, rfc3339

STATUS_EVENTS_SQL = """
SELECT event_id, event_type, node_name, status, result, meta, error, created_at, command_id
  FROM event WHERE execution_id = $1
"""
ACTIVE_COMMANDS_SQL = """
SELECT EXISTS (SELECT 1 FROM command WHERE execution_id = $1 AND status IN ('PENDING', 'CLAIMED', 'RUNNING'))
"""
EXECUTION_ROW_SQL = """
SELECT execution_id, catalog_id, parent_execution_id, status, start_time, end_time, error, path, version,
       workload, result, state, created_at FROM execution WHERE execution_id = $1
"""


def _compact(values: dict[str, Any], full: bool) -> dict[str, Any]:
    if full:
        return values
    out: dict[str, Any] = {}
    for k, v in values.items():
        text = repr(v)
        out[k] = v if len(text) <= 200 else text[:200] + "…"
    return out


async def status(deps: Deps, execution_id: int, full: bool = False) -> dict[str, Any]:
    """GET /api/executions/{id}/status (the union shape; 404 when the execution has no events)."""
    # One snapshot for the three reads: events read before a pass commits and commands read after it would
    # show no live command and no terminal event, and the status would be inferred COMPLETED too early.
    async with deps.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        rows = await conn.fetch(STATUS_EVENTS_SQL, execution_id)
        if not rows:
            raise NotFound(f"execution not found: {execution_id}")
        active = bool(await conn.fetchval(ACTIVE_COMMANDS_SQL, execution_id))
        state_raw = await conn.fetchval("SELECT state FROM execution WHERE execution_id = $1", execution_id)
    out = derive_status(execution_id, [row_for_engine(r) for r in rows], commands_active=active)
    out["execution_id"] = str(execution_id)
    variables: dict[str, Any] = {}
    if state_raw:
        st = ExecutionState.from_dict(state_raw)
        variables = {**st.workload, **st.vars}
    out["variables"] = _compact(variables, full)
    out.setdefault("source", "event_log")
    return out


def _event_item(r: Any) -> dict[str, Any]:
    return {
        "event_id": str(r["event_id"]),
        "event_type": r["event_type"],
        "node_name": r["node_name"],
        "status": r["status"],
        "created_at": rfc3339(r["created_at"]),
        "result": r["result"],
        "error": r["error"],
    }


def _page_args(query: dict[str, str], default_size: int = 10) -> tuple[int, int]:
    try:
        page = int(query.get("page", 1))
        size = int(query.get("page_size", default_size))
    except ValueError:
        raise ValidationFailed("page and page_size must be integers") from None
    if page < 1:
        raise ValidationFailed("page must be >= 1")
    return page, max(10, min(500, size))


async def events_page(
    deps: Deps, execution_id: int, query: dict[str, str]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Events newest first, paged, optionally after an event id or of one type."""
    page, size = _page_args(query)
    since = query.get("since_event_id")
    since_id = int(since) if since and since.lstrip("-").isdigit() else None
    etype = query.get("event_type") or None
    async with deps.pool.acquire() as conn:
        total = int(
            await conn.fetchval(
                "SELECT count(*) FROM event WHERE execution_id = $1 AND ($2::bigint IS NULL OR event_id > $2) "
                "AND ($3::text IS NULL OR event_type = $3)",
                execution_id,
                since_id,
                etype,
            )
        )
        rows = await conn.fetch(
            "SELECT event_id, event_type, node_name, status, created_at, result, error FROM event "
            "WHERE execution_id = $1 AND ($2::bigint IS NULL OR event_id > $2) AND ($3::text IS NULL OR "
            "event_type = $3) ORDER BY event_id DESC LIMIT $4 OFFSET $5",
            execution_id,
            since_id,
            etype,
            size,
            (page - 1) * size,
        )
    pages = max(1, -(-total // size))
    pagination = {
        "page": page,
        "page_size": size,
        "total_events": total,
        "total_pages": pages,
        "has_next": page < pages,
        "has_prev": page > 1,
    }
    return [_event_item(r) for r in rows], pagination


async def detail(deps: Deps, execution_id: int, query: dict[str, str]) -> dict[str, Any]:
    """GET /api/executions/{id}."""
    row = await deps.pool.fetchrow(EXECUTION_ROW_SQL, execution_id)
    if row is None:
        raise NotFound(f"execution not found: {execution_id}")
    st = await status(deps, execution_id)
    include = query.get("include_events", "true").lower() not in ("false", "0", "no")
    events, pagination = await events_page(deps, execution_id, query) if include else ([], None)
    terminal = st["status"] in ("COMPLETED", "FAILED", "CANCELLED")
    prog = st.get("progress") or {}
    total = prog.get("total_steps") or 0
    percent = 100 if terminal else (int(100 * (prog.get("completed_steps") or 0) / total) if total else 0)
    return {
        "execution_id": str(execution_id),
        "catalog_id": str(row["catalog_id"]),
        "path": row["path"],
        "version": row["version"],
        "status": st["status"],
        "start_time": st.get("start_time"),
        "end_time": st.get("end_time"),
        "started_at": st.get("start_time"),
        "completed_at": st.get("end_time"),
        "duration_seconds": st.get("duration_seconds"),
        "duration_human": st.get("duration_human"),
        "progress": percent,
        "result": row["result"] if st["status"] == "COMPLETED" else None,
        "error": st.get("error"),
        "parent_execution_id": _str(row["parent_execution_id"]),
        "workload": row["workload"],
        "events": events,
        "events_included": include,
        "events_endpoint": f"/api/executions/{execution_id}/events",
        "pagination": pagination,
    }


def _str(v: Any) -> str | None:
    return None if v is None else str(v)


async def list_executions(deps: Deps, query: dict[str, str]) -> list[dict[str, Any]]:
    """GET /api/executions from noetl.execution, newest first."""
    try:
        if "limit" in query or "offset" in query:
            limit = max(1, min(100, int(query.get("limit", 50))))
            offset = max(0, int(query.get("offset", 0)))
        else:
            page = max(1, int(query.get("page", 1)))
            limit = max(1, min(200, int(query.get("page_size", 100))))
            offset = (page - 1) * limit
    except ValueError:
        raise ValidationFailed("paging parameters must be integers") from None
    if offset > 5000:
        raise ValidationFailed("offset beyond 5000; narrow the query with filters")
    cid = query.get("catalog_id")
    rows = await deps.pool.fetch(
        "SELECT execution_id, catalog_id, parent_execution_id, status, start_time, end_time, error, path, "
        "version, result, created_at FROM execution WHERE ($1::bigint IS NULL OR catalog_id = $1) "
        "AND ($2::text IS NULL OR path ILIKE '%' || $2 || '%') AND ($3::text IS NULL OR status = upper($3)) "
        "ORDER BY COALESCE(start_time, created_at) DESC, execution_id DESC LIMIT $4 OFFSET $5",
        int(cid) if cid and cid.isdigit() else None,
        query.get("path"),
        query.get("status"),
        limit,
        offset,
    )
    out = []
    for r in rows:
        start, end = r["start_time"], r["end_time"]
        dur = (end - start).total_seconds() if start and end else None
        out.append(
            {
                "execution_id": str(r["execution_id"]),
                "catalog_id": str(r["catalog_id"]),
                "path": r["path"],
                "version": r["version"],
                "status": r["status"],
                "start_time": rfc3339(start),
                "end_time": rfc3339(end),
                "started_at": rfc3339(start),
                "completed_at": rfc3339(end),
                "duration_seconds": dur,
                "duration_human": duration_human(dur) if dur is not None else None,
                "progress": 100 if r["status"] in ("COMPLETED", "FAILED", "CANCELLED") else 0,
                "result": r["result"],
                "error": r["error"],
                "parent_execution_id": _str(r["parent_execution_id"]),
            }
        )
    return out


async def cancellation_check(deps: Deps, execution_id: int) -> dict[str, Any]:
    """GET /api/executions/{id}/cancellation-check."""
    async with deps.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT status FROM execution WHERE execution_id = $1", execution_id)
        term = await conn.fetchrow(
            "SELECT event_type FROM event WHERE execution_id = $1 AND event_type = ANY($2::text[]) "
            "ORDER BY event_id DESC LIMIT 1",
            execution_id,
            list(TERMINAL_TYPES),
        )
        if row is None and term is None:
            exists = await conn.fetchval("SELECT 1 FROM event WHERE execution_id = $1 LIMIT 1", execution_id)
            if not exists:
                raise NotFound(f"execution not found: {execution_id}")
    st = (
        (row["status"] if row else None)
        or (terminal_status(term["event_type"]) if term else None)
        or "RUNNING"
    )
    if term is not None:
        st = terminal_status(term["event_type"]) or st
    cancelled = st == "CANCELLED"
    return {
        "execution_id": str(execution_id),
        "status": st,
        "event_type": term["event_type"] if term else None,
        "cancelled": cancelled,
        "is_cancelled": cancelled,
        "completed": st in ("COMPLETED", "CANCELLED"),
        "failed": st == "FAILED",
    }
