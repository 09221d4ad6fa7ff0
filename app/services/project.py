"""Event projection (server-contract §11.3): insert envelopes idempotently, orchestrate new triggers."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from app.bootstrap import Deps
from app.errors import ValidationFailed
from app.services.eventlog import TRIGGER_TYPES, append_events, canonical_status, naive_utc
from app.services.locks import lock_execution
from app.timefmt import parse_ts

_JSON_FIELDS = ("context", "result", "meta", "trace_component")


def _int(v: Any) -> int | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        return int(str(v).strip())
    except ValueError:
        return None


def _row(env: dict[str, Any], now: datetime) -> dict[str, Any]:
    event_id = _int(env.get("event_id"))
    if event_id is None:
        raise ValidationFailed("every envelope needs an integer event_id")
    created = (
        parse_ts(env.get("timestamp") or env.get("created_at"))
        if (env.get("timestamp") or env.get("created_at"))
        else None
    )
    etype = str(env.get("event_type") or "unknown")
    result = env.get("result")
    if result is not None and not (isinstance(result, dict) and isinstance(result.get("status"), str)):
        result = {
            "status": canonical_status(etype, env.get("status")),
            **({"context": result} if isinstance(result, dict) else {}),
        }
    return {
        "execution_id": _int(env.get("execution_id")),
        "catalog_id": _int(env.get("catalog_id")),
        "event_id": event_id,
        "parent_event_id": _int(env.get("parent_event_id")),
        "prev_event_id": _int(env.get("prev_event_id")),
        "parent_execution_id": _int(env.get("parent_execution_id")),
        "created_at": naive_utc(created or now),
        "event_type": etype,
        "node_id": env.get("node_id"),
        "node_name": env.get("node_name") or env.get("node_id"),
        "node_type": env.get("node_type"),
        "status": (str(env["status"]).upper() if env.get("status") else canonical_status(etype, None)),
        "duration": env.get("duration"),
        "context": env.get("context") if isinstance(env.get("context"), dict) else None,
        "result": result,
        "meta": env.get("meta") if isinstance(env.get("meta"), dict) else None,
        "error": env.get("error"),
        "stack_trace": env.get("stack_trace"),
        "trace_component": env.get("trace_component"),
        "command_id": _int(env.get("command_id")),
        "worker_id": env.get("worker_id"),
        "tenant_id": env.get("tenant_id") or "default",
        "organization_id": env.get("organization_id") or "default",
    }


async def project(deps: Deps, envelopes: list[Any]) -> dict[str, int]:
    """Insert each execution's envelopes under its lock; run the orchestrator for new trigger events."""
    from app.services.orchestration import orchestrate_locked

    if not envelopes:
        raise ValidationFailed("events must be a non-empty list")
    now = datetime.now(UTC)
    rows = [_row(e, now) for e in envelopes if isinstance(e, dict)]
    if len(rows) != len(envelopes):
        raise ValidationFailed("every event must be an object")
    by_execution: dict[int | None, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_execution[r["execution_id"]].append(r)
    projected = 0
    async with deps.pool.acquire() as conn, conn.transaction():
        for execution_id, group in by_execution.items():
            if execution_id is None:
                raise ValidationFailed(f"event {group[0]['event_id']}: execution_id is required")
            await lock_execution(conn, execution_id)
            missing = [r for r in group if r["catalog_id"] is None]
            if missing:
                cid = await conn.fetchval(
                    "SELECT catalog_id FROM execution WHERE execution_id = $1", execution_id
                )
                if cid is None:
                    cid = await conn.fetchval(
                        "SELECT catalog_id FROM event WHERE execution_id = $1 LIMIT 1", execution_id
                    )
                if cid is None:
                    raise ValidationFailed(
                        f"event {missing[0]['event_id']}: execution {execution_id} is unknown and the envelope "
                        "has no catalog_id"
                    )
                for r in missing:
                    r["catalog_id"] = cid
            inserted = await append_events(conn, deps.settings, group, now)
            projected += len(inserted)
            if any(r["event_type"] in TRIGGER_TYPES for r in group if r["event_id"] in inserted):
                await orchestrate_locked(conn, deps, execution_id, now)
    deps.metrics.events_projected.inc(projected)
    deps.signal_outbox()
    return {"projected": projected, "duplicates": len(rows) - projected}
