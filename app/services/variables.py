"""Execution variables (noetl.transient) and the result store (server-contract §10)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from app.bootstrap import Deps
from app.errors import BadRequest, NotFound, ValidationFailed
from app.timefmt import rfc3339

VAR_TYPES = frozenset({"user_defined", "step_result", "computed", "iterator_state"})
SCOPES = frozenset({"execution", "step", "workflow", "permanent"})
_LEGACY_REF = re.compile(r"^noetl://execution/(?P<eid>-?\d+)/result/(?P<name>[^/]+)/(?P<id>-?\d+)$")
_CANON_REF = re.compile(r"^noetl://[^/]+/[^/]+/results/(?P<eid>-?\d+)/(?P<step>[^/]+)/[^/]+/[^/]+/[^/]+$")

UPSERT_VAR_SQL = """
INSERT INTO transient (execution_id, var_name, var_type, var_value, source_step)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (execution_id, var_name) DO UPDATE SET var_type = EXCLUDED.var_type,
    var_value = EXCLUDED.var_value, source_step = EXCLUDED.source_step
"""


def _items(body: Any) -> list[tuple[str, Any, str, str | None]]:
    """Every body shape: {variables: {...}}, {variables: [...]}, or a bare map."""
    if not isinstance(body, dict):
        raise ValidationFailed("request body must be a JSON object")
    default_type = body.get("var_type", "user_defined") if "variables" in body else "user_defined"
    default_step = body.get("source_step") if "variables" in body else None
    raw = body["variables"] if "variables" in body else body
    out: list[tuple[str, Any, str, str | None]] = []
    if isinstance(raw, dict):
        out = [(str(k), v, default_type, default_step) for k, v in raw.items()]
    elif isinstance(raw, list):
        for item in raw:
            if not isinstance(item, dict) or "var_name" not in item:
                raise ValidationFailed("each variable needs var_name and var_value")
            out.append(
                (
                    str(item["var_name"]),
                    item.get("var_value"),
                    item.get("var_type") or default_type,
                    item.get("source_step", default_step),
                )
            )
    else:
        raise ValidationFailed("variables must be an object or a list")
    for _, _, vtype, _ in out:
        if vtype not in VAR_TYPES:
            raise ValidationFailed(f"var_type must be one of {', '.join(sorted(VAR_TYPES))} (got {vtype!r})")
    return out


async def set_vars(deps: Deps, execution_id: int, body: Any) -> dict[str, Any]:
    """POST /api/vars/{eid}."""
    items = _items(body)
    async with deps.pool.acquire() as conn, conn.transaction():
        for name, value, vtype, step in items:
            await conn.execute(UPSERT_VAR_SQL, execution_id, name, vtype, value, step)
    return {
        "execution_id": str(execution_id),
        "variables_set": len(items),
        "var_names": [i[0] for i in items],
    }


def _var(r: Any) -> dict[str, Any]:
    return {
        "value": r["var_value"],
        "type": r["var_type"],
        "source_step": r["source_step"],
        "created_at": rfc3339(r["created_at"]),
        "accessed_at": rfc3339(r["accessed_at"]),
        "access_count": r["access_count"],
    }


async def get_vars(deps: Deps, execution_id: int) -> dict[str, Any]:
    """GET /api/vars/{eid}."""
    rows = await deps.pool.fetch(
        "SELECT * FROM transient WHERE execution_id = $1 ORDER BY var_name", execution_id
    )
    return {
        "execution_id": str(execution_id),
        "variables": {r["var_name"]: _var(r) for r in rows},
        "count": len(rows),
    }


async def get_var(deps: Deps, execution_id: int, name: str) -> dict[str, Any]:
    """GET /api/vars/{eid}/{name}; counts the access."""
    r = await deps.pool.fetchrow(
        "UPDATE transient SET access_count = access_count + 1, accessed_at = now() "
        "WHERE execution_id = $1 AND var_name = $2 RETURNING *",
        execution_id,
        name,
    )
    if r is None:
        raise NotFound(f"variable {name!r} not found for execution {execution_id}")
    v = _var(r)
    return {
        "execution_id": str(execution_id),
        "var_name": name,
        "value": v["value"],
        "var_value": v["value"],
        **{k: v[k] for k in ("type", "source_step", "created_at", "accessed_at", "access_count")},
    }


async def delete_var(deps: Deps, execution_id: int, name: str) -> dict[str, Any]:
    """DELETE /api/vars/{eid}/{name}."""
    status = await deps.pool.execute(
        "DELETE FROM transient WHERE execution_id = $1 AND var_name = $2", execution_id, name
    )
    if status.endswith(" 0"):
        raise NotFound(f"variable {name!r} not found for execution {execution_id}")
    return {"execution_id": str(execution_id), "var_name": name, "deleted": True}


async def delete_vars(deps: Deps, execution_id: int) -> dict[str, Any]:
    """DELETE /api/vars/{eid}."""
    status = await deps.pool.execute("DELETE FROM transient WHERE execution_id = $1", execution_id)
    return {"execution_id": str(execution_id), "deleted_count": int(status.split()[-1])}


async def put_result(deps: Deps, execution_id: int, body: Any) -> dict[str, Any]:
    """PUT /api/result/{eid}: stage a large step result."""
    if not isinstance(body, dict) or not isinstance(body.get("name"), str) or "data" not in body:
        raise ValidationFailed("body needs name (string) and data")
    scope = body.get("scope") or "execution"
    if scope not in SCOPES:
        raise ValidationFailed(f"scope must be one of {', '.join(sorted(SCOPES))}")
    encoded = json.dumps(body["data"], separators=(",", ":"), sort_keys=True).encode()
    sha = hashlib.sha256(encoded).hexdigest()
    ttl = body.get("ttl")
    result_id = deps.ids.next_id()
    expires = await deps.pool.fetchval(
        "INSERT INTO result_store (result_id, execution_id, name, scope, source_step, data, bytes, sha256, "
        "expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
        "CASE WHEN $9::float8 IS NULL THEN NULL ELSE now() + make_interval(secs => $9::float8) END) "
        "RETURNING expires_at",
        result_id,
        execution_id,
        body["name"],
        scope,
        body.get("source_step"),
        body["data"],
        len(encoded),
        sha,
        float(ttl) if isinstance(ttl, int | float) else None,
    )
    out = {
        "ref": f"noetl://execution/{execution_id}/result/{body['name']}/{result_id}",
        "store": "db",
        "scope": scope,
        "bytes": len(encoded),
        "sha256": sha,
    }
    if expires is not None:
        out["expires_at"] = rfc3339(expires)
    return out


async def resolve_result(deps: Deps, ref: str | None) -> Any:
    """GET /api/result/resolve?ref=: the stored JSON value itself."""
    if not ref:
        raise BadRequest("ref is required")
    m = _LEGACY_REF.match(ref)
    if m:
        row = await deps.pool.fetchrow(
            "SELECT data FROM result_store WHERE result_id = $1 AND execution_id = $2 "
            "AND (expires_at IS NULL OR expires_at > now())",
            int(m["id"]),
            int(m["eid"]),
        )
    else:
        c = _CANON_REF.match(ref)
        if not c:
            raise BadRequest(f"malformed result ref: {ref}")
        row = await deps.pool.fetchrow(
            "SELECT data FROM result_store WHERE execution_id = $1 AND (name = $2 OR source_step = $2) "
            "AND (expires_at IS NULL OR expires_at > now()) ORDER BY created_at DESC LIMIT 1",
            int(c["eid"]),
            c["step"],
        )
    if row is None:
        raise NotFound("result not found")
    return row["data"]
