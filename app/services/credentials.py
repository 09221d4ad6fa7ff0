"""The credential store over ``noetl.credential`` and the lookups the resolver needs (secrets.md §3.1, §4.2)."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from app.db.types import Executor
from app.secrets.envelope import EnvelopeCipher
from app.secrets.resolver import CredentialRecord, StartEvent, not_found
from app.secrets.response import credential_response_json

_I64 = re.compile(r"^[+-]?[0-9]+$")

COLUMNS = "id, name, type, data_encrypted, meta, tags, description, created_at, updated_at"

# Upsert by name (§3.1): every field is replaced, omitted ones become NULL; the id is kept on update.
UPSERT_SQL = f"""
INSERT INTO credential (id, name, type, data_encrypted, meta, tags, description, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, now(), now())
ON CONFLICT (name) DO UPDATE SET type = EXCLUDED.type, data_encrypted = EXCLUDED.data_encrypted,
    meta = EXCLUDED.meta, tags = EXCLUDED.tags, description = EXCLUDED.description, updated_at = now()
RETURNING {COLUMNS}
"""

BY_ID_SQL = f"SELECT {COLUMNS} FROM credential WHERE id = $1"
BY_NAME_SQL = f"SELECT {COLUMNS} FROM credential WHERE name = $1"

LIST_SQL = f"""
SELECT {COLUMNS} FROM credential
 WHERE ($1::text IS NULL OR type = $1)
   AND ($2::text IS NULL OR name ILIKE $2 ESCAPE '\\' OR description ILIKE $2 ESCAPE '\\')
 ORDER BY created_at DESC, id DESC
"""

DELETE_BY_ID_SQL = "DELETE FROM credential WHERE id = $1 RETURNING id"
DELETE_BY_NAME_SQL = "DELETE FROM credential WHERE name = $1 RETURNING id"

START_EVENT_SQL = """
SELECT catalog_id, context -> 'workload' AS workload FROM event
 WHERE execution_id = $1 AND event_type IN ('playbook_started', 'playbook.initialized')
 LIMIT 1
"""

CATALOG_SQL = "SELECT content FROM catalog WHERE catalog_id = $1"

PUBKEY_SQL = "SELECT runtime FROM runtime WHERE kind = 'worker_pool' AND name = $1"


class CredentialIn(BaseModel):
    """POST /api/credentials body; ``credential_type`` and comma-string ``tags`` are Python-era spellings."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1)
    type: str = Field(validation_alias=AliasChoices("type", "credential_type"))
    data: Any
    meta: Any = None
    tags: list[str] | str | None = None
    description: str | None = None

    @field_validator("tags", mode="after")
    @classmethod
    def _split_tags(cls, v: list[str] | str | None) -> list[str] | None:
        if isinstance(v, str):
            return [t.strip() for t in v.split(",") if t.strip()]
        return v


def parse_i64(identifier: str) -> int | None:
    """The identifier as an i64 (optional sign, digits only), else None."""
    if not _I64.match(identifier):
        return None
    n = int(identifier)
    return n if -(2**63) <= n < 2**63 else None


def _record(row: Any) -> CredentialRecord:
    return CredentialRecord(
        id=row["id"],
        name=row["name"],
        type=row["type"],
        data_encrypted=row["data_encrypted"],
        meta=row["meta"],
        tags=list(row["tags"]) if row["tags"] is not None else None,
        description=row["description"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def response_json(rec: CredentialRecord) -> str:
    """The CredentialResponse without ``data``."""
    assert rec.created_at is not None and rec.updated_at is not None
    return credential_response_json(
        id=rec.id,
        name=rec.name,
        type=rec.type,
        meta=rec.meta,
        tags=rec.tags,
        description=rec.description,
        created_at=rec.created_at,
        updated_at=rec.updated_at,
    )


async def lookup(db: Executor, identifier: str) -> CredentialRecord | None:
    """By id when the identifier is an i64, falling back to the name."""
    n = parse_i64(identifier)
    row = await db.fetchrow(BY_ID_SQL, n) if n is not None else None
    if row is None:
        row = await db.fetchrow(BY_NAME_SQL, identifier)
    return _record(row) if row is not None else None


async def upsert(db: Executor, cipher: EnvelopeCipher, new_id: int, body: CredentialIn) -> str:
    """Seal ``data`` and upsert by name; returns the CredentialResponse JSON (no data)."""
    sealed = await cipher.seal(body.data)
    row = await db.fetchrow(
        UPSERT_SQL, new_id, body.name, body.type, sealed, body.meta, body.tags, body.description
    )
    return response_json(_record(row))


def _like(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def list_json(db: Executor, type_: str | None, q: str | None) -> str:
    """``{"items": [...], "filter": {...}}`` (filter only when a parameter was given)."""
    rows = await db.fetch(LIST_SQL, type_, _like(q) if q is not None else None)
    items = ",".join(response_json(_record(r)) for r in rows)
    out = '{"items":[' + items + "]"
    if type_ is not None or q is not None:
        flt: dict[str, str] = {}
        if type_ is not None:
            flt["type"] = type_
        if q is not None:
            flt["q"] = q
        out += ',"filter":' + json.dumps(flt, separators=(",", ":"), ensure_ascii=False)
    return out + "}"


async def get_json(db: Executor, identifier: str) -> str:
    """GET without data: the record or 404."""
    rec = await lookup(db, identifier)
    if rec is None:
        raise not_found(identifier)
    return response_json(rec)


async def delete(db: Executor, identifier: str) -> dict[str, Any]:
    """Delete by id (falling back to name); 404 when absent."""
    n = parse_i64(identifier)
    row = await db.fetchrow(DELETE_BY_ID_SQL, n) if n is not None else None
    if row is None:
        row = await db.fetchrow(DELETE_BY_NAME_SQL, identifier)
    if row is None:
        raise not_found(identifier)
    return {"message": "Credential deleted successfully", "id": str(row["id"])}


async def start_event(db: Executor, execution_id: int) -> StartEvent | None:
    """The execution's start event (catalog id and top-level workload)."""
    row = await db.fetchrow(START_EVENT_SQL, execution_id)
    if row is None:
        return None
    workload = row["workload"]
    return StartEvent(catalog_id=row["catalog_id"], workload=workload if isinstance(workload, dict) else {})


async def catalog_content(db: Executor, catalog_id: int) -> str | None:
    """The catalog row's playbook YAML."""
    row = await db.fetchrow(CATALOG_SQL, catalog_id)
    return row["content"] if row is not None else None


async def worker_pubkey(db: Executor, worker_id: str) -> str | None:
    """The registered ``runtime.worker_public_key``; None when the row, runtime or key is absent/empty."""
    row = await db.fetchrow(PUBKEY_SQL, worker_id)
    runtime = row["runtime"] if row is not None else None
    if not isinstance(runtime, dict):
        return None
    key = runtime.get("worker_public_key")
    if key is None or key == "":
        return None
    return key if isinstance(key, str) else str(key)
