"""The catalog (server-contract §7): register (validated), batch, list, fetch, delete and restore."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import yaml

from app.bootstrap import Deps
from app.db.types import Conn, Executor
from app.domain import parse_playbook
from app.errors import InvalidPlaybook, NotFound, ValidationFailed
from app.timefmt import rfc3339

KIND_ALIASES = {
    "playbook": "playbook",
    "credential": "credential",
    "credentials": "credential",
    "secret": "credential",
    "secrets": "credential",
    "mcp": "mcp",
    "agent": "agent",
    "memory": "memory",
    "subscription": "subscription",
}
EXECUTABLE = frozenset({"playbook", "agent"})

ENTRY_COLUMNS = "catalog_id, path, kind, version, content, layout, payload, meta, created_at"


def canonical_kind(value: str | None) -> str | None:
    """Lower-case with aliases (the CLI sends 'Playbook')."""
    if not value:
        return None
    low = str(value).strip().lower()
    return KIND_ALIASES.get(low, low)


def decode_content(content: str) -> str:
    """Base64 first, the raw text otherwise."""
    text = content.strip()
    try:
        raw = base64.b64decode(text, validate=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return content
    return decoded if decoded.strip() else content


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def entry(row: Any) -> dict[str, Any]:
    """The list/resource entry shape (ids as strings, nulls explicit)."""
    return {
        "catalog_id": str(row["catalog_id"]),
        "path": row["path"],
        "kind": row["kind"],
        "version": row["version"],
        "content": row["content"],
        "layout": row["layout"],
        "payload": row["payload"],
        "meta": row["meta"],
        "created_at": rfc3339(row["created_at"]),
    }


async def register(deps: Deps, content: str, resource_type: str | None) -> dict[str, Any]:
    """Validate and store one resource; identical content for a path returns the existing version."""
    text = decode_content(content)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValidationFailed(f"Invalid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ValidationFailed("Invalid YAML: the document must be a mapping")
    raw_meta = doc.get("metadata")
    metadata: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    path = metadata.get("path") or metadata.get("name")
    if not path or not isinstance(path, str):
        raise ValidationFailed("Missing 'path' or 'name' in metadata")
    kind = canonical_kind(doc.get("kind")) or canonical_kind(resource_type) or "playbook"
    warnings: list[str] = []
    if kind in EXECUTABLE:
        _, warnings = parse_playbook(text)  # raises InvalidPlaybook (422) with step/field/reason
    sha = hashlib.sha256(text.encode()).hexdigest()
    payload = _jsonable(doc)
    layout = payload.get("workflow") if isinstance(payload.get("workflow"), list) else None
    meta = {"registered_at": rfc3339(datetime.now(UTC)), "labels": metadata.get("labels") or {}}
    async with deps.pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", path)
        await conn.execute(
            "INSERT INTO resource (name, meta) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            kind,
            {"description": f"{kind} resource", "executable": kind in EXECUTABLE},
        )
        latest = await conn.fetchrow(
            "SELECT catalog_id, version, content_sha256 FROM catalog WHERE path = $1 AND archived_at IS NULL "
            "ORDER BY version DESC LIMIT 1",
            path,
        )
        if latest is not None and latest["content_sha256"] == sha:
            catalog_id, version = latest["catalog_id"], latest["version"]
        else:
            version = int(
                await conn.fetchval("SELECT COALESCE(max(version), 0) + 1 FROM catalog WHERE path = $1", path)
            )
            catalog_id = deps.ids.next_id()
            await conn.execute(
                "INSERT INTO catalog (catalog_id, path, version, kind, content, layout, payload, meta, "
                "content_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                catalog_id,
                path,
                version,
                kind,
                text,
                layout,
                payload,
                meta,
                sha,
            )
    out: dict[str, Any] = {
        "status": "success",
        "message": f"Resource '{path}' version '{version}' registered.",
        "path": path,
        "version": version,
        "catalog_id": str(catalog_id),
        "kind": kind,
    }
    if warnings:
        out["warnings"] = warnings
    return out


async def register_batch(deps: Deps, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Each item in its own transaction; a bad item does not block the others."""
    results = []
    for i, item in enumerate(items):
        try:
            content = item.get("content")
            if not isinstance(content, str) or not content.strip():
                raise ValidationFailed("content is required")
            r = await register(deps, content, item.get("resource_type"))
            results.append(
                {
                    "index": i,
                    "status": "registered",
                    "path": r["path"],
                    "version": r["version"],
                    "catalog_id": r["catalog_id"],
                    "kind": r["kind"],
                }
            )
        except (ValidationFailed, InvalidPlaybook) as exc:
            results.append(
                {
                    "index": i,
                    "status": "error",
                    "path": None,
                    "version": None,
                    "catalog_id": None,
                    "kind": None,
                    "error": exc.message,
                    "problems": getattr(exc, "problems", None),
                }
            )
    ok = sum(1 for r in results if r["status"] == "registered")
    return {"count": len(items), "registered": ok, "failed": len(items) - ok, "results": results}


async def list_entries(
    deps: Deps, resource_type: str | None, path: str | None, include_archived: bool
) -> dict[str, Any]:
    """Entries newest first, filtered by kind (alias-mapped) and path."""
    rows = await deps.pool.fetch(
        f"SELECT {ENTRY_COLUMNS} FROM catalog WHERE ($1::text IS NULL OR lower(kind) = $1) "
        "AND ($2::text IS NULL OR path = $2) AND ($3 OR archived_at IS NULL) "
        "ORDER BY created_at DESC, catalog_id DESC",
        canonical_kind(resource_type),
        path,
        include_archived,
    )
    return {"entries": [entry(r) for r in rows]}


async def find(conn: Executor, catalog_id: int | None, path: str | None, version: Any) -> Any:
    """One catalog row by id, or by path and version ('latest' or absent = newest non-archived)."""
    if catalog_id is not None:
        return await conn.fetchrow(f"SELECT {ENTRY_COLUMNS} FROM catalog WHERE catalog_id = $1", catalog_id)
    if version in (None, "", "latest"):
        return await conn.fetchrow(
            f"SELECT {ENTRY_COLUMNS} FROM catalog WHERE path = $1 AND archived_at IS NULL "
            "ORDER BY version DESC LIMIT 1",
            path,
        )
    try:
        v = int(str(version).strip())
    except ValueError:
        raise ValidationFailed(f"version must be an integer or 'latest' (got {version!r})") from None
    return await conn.fetchrow(
        f"SELECT {ENTRY_COLUMNS} FROM catalog WHERE path = $1 AND version = $2", path, v
    )


async def resource(deps: Deps, catalog_id: int | None, path: str | None, version: Any) -> dict[str, Any]:
    """POST /api/catalog/resource."""
    if catalog_id is None and not path:
        raise ValidationFailed("catalog_id or path is required")
    row = await find(deps.pool, catalog_id, path, version)
    if row is None:
        raise NotFound(f"Resource not found: {path if path else catalog_id}")
    return entry(row)


async def delete(deps: Deps, path: str, version: int | None) -> dict[str, Any]:
    """Hard delete, or archive when events still reference the row."""
    deleted = []
    async with deps.pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "SELECT catalog_id, version FROM catalog WHERE path = $1 "
            "AND ($2::int IS NULL OR version = $2) AND archived_at IS NULL",
            path,
            version,
        )
        for r in rows:
            if await _referenced(conn, r["catalog_id"]):
                await conn.execute(
                    "UPDATE catalog SET archived_at = now() WHERE catalog_id = $1", r["catalog_id"]
                )
            else:
                await conn.execute("DELETE FROM keychain WHERE catalog_id = $1", r["catalog_id"])
                await conn.execute("DELETE FROM catalog WHERE catalog_id = $1", r["catalog_id"])
            deleted.append({"catalog_id": str(r["catalog_id"]), "version": r["version"]})
    return {
        "status": "success",
        "message": f"Deleted {len(deleted)} version(s) of '{path}'",
        "path": path,
        "deleted": deleted,
        "count": len(deleted),
    }


async def _referenced(conn: Conn, catalog_id: int) -> bool:
    for table in ("event", "execution", "command"):
        if await conn.fetchval(f"SELECT 1 FROM {table} WHERE catalog_id = $1 LIMIT 1", catalog_id):
            return True
    return False


async def restore(deps: Deps, path: str, version: int | None) -> dict[str, Any]:
    """Clear archived_at."""
    rows = await deps.pool.fetch(
        "UPDATE catalog SET archived_at = NULL WHERE path = $1 AND ($2::int IS NULL OR version = $2) "
        "AND archived_at IS NOT NULL RETURNING catalog_id, version",
        path,
        version,
    )
    restored = [{"catalog_id": str(r["catalog_id"]), "version": r["version"]} for r in rows]
    return {
        "status": "success",
        "message": f"Restored {len(restored)} version(s) of '{path}'",
        "path": path,
        "deleted": restored,
        "count": len(restored),
    }
