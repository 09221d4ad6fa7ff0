"""Runtime registry (server-contract §9): worker/server rows, heartbeats, the offline sweep, singleton leases."""

from __future__ import annotations

import json
import re
from typing import Any

import asyncpg

from app.config import redact_url
from app.errors import BadRequest, NotFound
from app.ids import SnowflakeGenerator

KINDS = ("worker_pool", "server_api", "broker")
_URL_IN_TEXT = re.compile(r"[a-z][a-z0-9+.-]*://[^\s\"']+", re.I)

UPSERT_SQL = """
INSERT INTO runtime (runtime_id, name, kind, uri, status, labels, capacity, runtime, heartbeat, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now(), now())
ON CONFLICT (kind, name) DO UPDATE SET
    uri = EXCLUDED.uri, status = EXCLUDED.status, labels = EXCLUDED.labels, capacity = EXCLUDED.capacity,
    runtime = EXCLUDED.runtime, heartbeat = now(), updated_at = now()
RETURNING runtime_id, name, kind, runtime
"""

HEARTBEAT_SQL = """
UPDATE runtime SET heartbeat = now(), status = 'ready', updated_at = now()
 WHERE kind = $1 AND name = $2 RETURNING runtime_id
"""

DEREGISTER_SQL = """
UPDATE runtime SET status = 'offline', updated_at = now() WHERE name = $1 AND ($2::text IS NULL OR kind = $2)
RETURNING kind
"""

SWEEP_SQL = """
UPDATE runtime SET status = 'offline', updated_at = now()
 WHERE status <> 'offline' AND heartbeat < now() - make_interval(secs => $1)
   AND NOT (kind = 'server_api' AND runtime->>'type' = 'server_control')
"""

LIST_SQL = """
SELECT name, kind, runtime, status, capacity, labels, heartbeat, created_at, updated_at FROM runtime
 WHERE ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR name = $3)
   AND ($4::text IS NULL OR runtime::text ILIKE '%' || $4 || '%')
 ORDER BY kind, name
"""

LEASE_SQL = """
INSERT INTO runtime (runtime_id, name, kind, status, runtime, heartbeat, updated_at)
VALUES ($1, $2, 'server_api', 'ready', $3, now(), now())
ON CONFLICT (kind, name) DO UPDATE SET runtime = EXCLUDED.runtime, heartbeat = now(), updated_at = now()
 WHERE runtime.runtime->>'owner_instance' = $4 OR runtime.heartbeat < now() - make_interval(secs => $5)
RETURNING runtime_id
"""


def redact(value: Any) -> Any:
    """Strip credentials from every URL inside a JSON value before it is stored or logged."""
    if isinstance(value, str):
        return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), value) if "@" in value else value
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _runtime_value(body: dict[str, Any]) -> Any:
    runtime = body.get("runtime")
    extra = {k: body[k] for k in ("hostname", "pid", "meta") if body.get(k) is not None}
    if isinstance(runtime, dict):
        return redact({**extra, **runtime}) if extra else redact(runtime)
    if runtime is None:
        return redact(extra) or None
    return redact({**extra, "type": runtime}) if extra else runtime


async def register(pool: asyncpg.Pool, ids: SnowflakeGenerator, body: dict[str, Any]) -> dict[str, Any]:
    """Upsert a runtime row; doubles as a heartbeat (the Python worker re-registers every 15 s)."""
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("name is required")
    kind = str(body.get("component_type") or body.get("kind") or "worker_pool").lower()
    if kind not in KINDS:
        from app.errors import ValidationFailed

        raise ValidationFailed(f"kind must be one of {', '.join(KINDS)} (got {kind!r})")
    uri = body.get("uri") or body.get("base_url")
    if kind in ("server_api", "broker") and not uri:
        raise BadRequest(f"uri is required for kind {kind}")
    labels = body.get("labels") if isinstance(body.get("labels"), dict) else {}
    raw_capacity = body.get("capacity")
    capacity = (
        int(str(raw_capacity).split(".")[0])
        if str(raw_capacity or "").replace(".", "", 1).isdigit()
        else None
    )
    status = str(body.get("status") or "ready").lower()
    runtime = _runtime_value(body)
    row = await pool.fetchrow(
        UPSERT_SQL,
        ids.next_id(),
        name,
        kind,
        redact(uri) if uri else None,
        status,
        redact(labels),
        capacity,
        runtime,
    )
    assert row is not None
    return {
        "status": "ok",
        "name": row["name"],
        "runtime_id": str(row["runtime_id"]),
        "kind": row["kind"],
        "runtime": row["runtime"],
    }


async def heartbeat(
    pool: asyncpg.Pool, ids: SnowflakeGenerator, body: dict[str, Any], *, auto_recreate: bool
) -> dict[str, Any]:
    """Refresh a row; re-create it when missing (unless NOETL_AUTO_RECREATE_RUNTIME=false)."""
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("name is required")
    kind = str(body.get("component_type") or body.get("kind") or "worker_pool").lower()
    rid = await pool.fetchval(HEARTBEAT_SQL, kind, name)
    if rid is not None:
        return {"status": "ok", "name": name, "runtime_id": str(rid)}
    if not auto_recreate:
        raise NotFound(f"runtime {name} is not registered", detail={"status": "unknown", "name": name})
    reg = body.get("registration")
    registration: dict[str, Any] = reg if isinstance(reg, dict) else {}
    created = await register(pool, ids, {"name": name, "kind": kind, **registration})
    return {"status": "recreated", "name": name, "runtime_id": created["runtime_id"]}


async def deregister(pool: asyncpg.Pool, body: dict[str, Any]) -> dict[str, Any]:
    """Mark offline; rows are kept so claim decisions can see stale workers."""
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("name is required")
    kind = body.get("component_type") or body.get("kind")
    got = await pool.fetchval(DEREGISTER_SQL, name, kind)
    return {"status": "ok", "name": name, "kind": got or kind or "worker_pool"}


async def list_pools(pool: asyncpg.Pool, query: dict[str, str]) -> dict[str, Any]:
    """GET /api/worker/pools."""
    rows = await pool.fetch(
        LIST_SQL, query.get("kind"), query.get("status"), query.get("name"), query.get("runtime")
    )
    from app.timefmt import rfc3339

    items = [
        {
            "name": r["name"],
            "kind": r["kind"],
            "runtime": r["runtime"],
            "status": r["status"],
            "capacity": r["capacity"],
            "labels": r["labels"] or {},
            "heartbeat": rfc3339(r["heartbeat"]),
            "created_at": rfc3339(r["created_at"]),
            "updated_at": rfc3339(r["updated_at"]),
        }
        for r in rows
    ]
    return {"items": items, "count": len(items)}


async def sweep(pool: asyncpg.Pool, offline_seconds: float) -> int:
    """Mark rows whose heartbeat is stale as offline; returns how many changed."""
    status = await pool.execute(SWEEP_SQL, float(offline_seconds))
    return int(status.split()[-1])


async def acquire_lease(
    pool: asyncpg.Pool,
    ids: SnowflakeGenerator,
    logical_name: str,
    task: str,
    instance: str,
    lease_seconds: float,
    hostname: str = "",
) -> bool:
    """Hold (or take over an expired) singleton lease `<logical_name>:<task>`; True when we own it."""
    runtime = {
        "type": "server_control",
        "task": task,
        "owner_instance": instance,
        "logical_name": logical_name,
        "hostname": hostname,
        "lease_seconds": lease_seconds,
    }
    rid = await pool.fetchval(
        LEASE_SQL, ids.next_id(), f"{logical_name}:{task}", runtime, instance, float(lease_seconds)
    )
    return rid is not None


def dumps(value: Any) -> str:
    """Compact JSON (for logs)."""
    return json.dumps(redact(value), default=str)
