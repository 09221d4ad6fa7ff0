"""The keychain cache API and the resolver's cache reads/writes over ``noetl.keychain`` (secrets.md §3.3, §4.3)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel, ConfigDict

from app.db.types import Executor
from app.errors import NotFound, ValidationFailed
from app.secrets.cache import keychain_cache_key
from app.secrets.encoding import canonical_json
from app.secrets.envelope import EnvelopeCipher
from app.secrets.resolver import CacheHit, CacheWrite
from app.timefmt import rfc3339, to_utc

SCOPES = ("local", "shared", "global")

# access_count/accessed_at are bumped before the value is decrypted (§3.3); expired rows are left alone.
BUMP_SQL = """
UPDATE keychain SET access_count = COALESCE(access_count, 0) + 1, accessed_at = now()
 WHERE cache_key = $1 AND expires_at >= now()
RETURNING keychain_name, catalog_id, cache_key, data_encrypted, credential_type, cache_type, scope_type,
          expires_at, accessed_at, access_count, auto_renew, renew_config, now() AS now
"""

PEEK_SQL = """
SELECT expires_at, COALESCE(access_count, 0) AS access_count, COALESCE(auto_renew, false) AS auto_renew,
       renew_config
  FROM keychain WHERE cache_key = $1
"""

UPSERT_SQL = """
INSERT INTO keychain (cache_key, keychain_name, catalog_id, credential_type, cache_type, scope_type,
                      execution_id, parent_execution_id, data_encrypted, expires_at, auto_renew, renew_config)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (cache_key) DO UPDATE SET data_encrypted = EXCLUDED.data_encrypted,
    expires_at = EXCLUDED.expires_at, auto_renew = EXCLUDED.auto_renew, renew_config = EXCLUDED.renew_config
"""

DELETE_SQL = "DELETE FROM keychain WHERE cache_key = $1 RETURNING cache_key"

LIST_SQL = """
SELECT keychain_name, scope_type, execution_id, expires_at, expires_at < now() AS expired,
       COALESCE(access_count, 0) AS access_count, accessed_at, created_at
  FROM keychain WHERE catalog_id = $1
 ORDER BY created_at DESC, cache_key
"""


class KeychainSetIn(BaseModel):
    """POST body; the Python worker sends ``token_data``/``ttl_seconds``, the Rust-era shape ``data``."""

    model_config = ConfigDict(extra="ignore")

    data: Any = None
    token_data: Any = None
    credential_type: str = "secret"
    cache_type: Literal["secret", "token"] = "secret"
    scope_type: Literal["local", "shared", "global"] = "global"
    execution_id: int | None = None
    parent_execution_id: int | None = None
    expires_at: datetime | None = None
    expires_in: int | None = None
    ttl_seconds: int | None = None
    auto_renew: bool = False
    renew_config: Any = None


def cache_key(name: str, catalog_id: int, scope_type: str, execution_id: int | None) -> str:
    """The table key for a scope; an unknown scope is a 422."""
    try:
        return keychain_cache_key(name, catalog_id, scope_type, execution_id)
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from None


def _canonical(value: Any) -> Any:
    # Free-form values leave with sorted keys (§0); a round trip keeps dict insertion order sorted.
    return json.loads(canonical_json(value))


def _ttl_left(expires_at: datetime, now: datetime) -> int:
    return max(0, math.floor((to_utc(expires_at) - to_utc(now)).total_seconds()))


async def get_entry(
    db: Executor,
    cipher: EnvelopeCipher,
    catalog_id: int,
    name: str,
    scope_type: str,
    execution_id: int | None,
) -> dict[str, Any]:
    """GET /api/keychain/{catalog_id}/{name}: not_found, expired (no data, no bump) or success."""
    key = cache_key(name, catalog_id, scope_type, execution_id)
    row = await db.fetchrow(BUMP_SQL, key)
    if row is None:
        peek = await db.fetchrow(PEEK_SQL, key)
        if peek is None:
            return {"status": "not_found"}
        return {
            "status": "expired",
            "expired": True,
            "expires_at": rfc3339(peek["expires_at"]),
            "auto_renew": peek["auto_renew"],
            "renew_config": peek["renew_config"],
            "access_count": peek["access_count"],
        }
    data = _canonical(await cipher.open(row["data_encrypted"]))
    return {
        "status": "success",
        "keychain_name": row["keychain_name"],
        "catalog_id": str(row["catalog_id"]),
        "cache_key": row["cache_key"],
        "data": data,
        "token_data": data,
        "credential_type": row["credential_type"],
        "cache_type": row["cache_type"],
        "scope_type": row["scope_type"],
        "expires_at": rfc3339(row["expires_at"]),
        "ttl_seconds": _ttl_left(row["expires_at"], row["now"]),
        "accessed_at": rfc3339(row["accessed_at"]),
        "access_count": row["access_count"],
        "auto_renew": bool(row["auto_renew"]),
        "renew_config": row["renew_config"],
        "expired": False,
    }


async def set_entry(
    db: Executor,
    cipher: EnvelopeCipher,
    catalog_id: int,
    name: str,
    body: KeychainSetIn,
    query_execution_id: int | None = None,
) -> dict[str, Any]:
    """POST /api/keychain/{catalog_id}/{name}: encrypt and upsert on the cache key."""
    if body.data is not None:
        value = body.data
    elif body.token_data is not None:
        value = body.token_data
    else:
        raise ValidationFailed("data or token_data is required")
    now = datetime.now(UTC)
    seconds = body.expires_in if body.expires_in is not None else body.ttl_seconds
    if body.expires_at is not None:
        expires_at = to_utc(body.expires_at)
    elif seconds is not None:
        try:
            expires_at = now + timedelta(seconds=seconds)
        except OverflowError:
            raise ValidationFailed("expires_in is out of range") from None
    else:
        raise ValidationFailed("expires_at or expires_in is required")
    execution_id = body.execution_id if body.execution_id is not None else query_execution_id
    key = cache_key(name, catalog_id, body.scope_type, execution_id)
    sealed = await cipher.seal(value)
    try:
        await db.execute(
            UPSERT_SQL,
            key,
            name,
            catalog_id,
            body.credential_type,
            body.cache_type,
            body.scope_type,
            execution_id,
            body.parent_execution_id,
            sealed,
            expires_at,
            body.auto_renew,
            body.renew_config,
        )
    except asyncpg.ForeignKeyViolationError:
        raise NotFound(f"catalog {catalog_id} not found") from None
    return {
        "status": "success",
        "message": f"keychain entry '{name}' stored",
        "keychain_name": name,
        "catalog_id": str(catalog_id),
        "cache_key": key,
        "expires_at": rfc3339(expires_at),
        "ttl_seconds": _ttl_left(expires_at, now),
        "auto_renew": body.auto_renew,
    }


async def delete_entry(
    db: Executor, catalog_id: int, name: str, scope_type: str, execution_id: int | None
) -> dict[str, Any]:
    """DELETE: ``deleted`` with the key, or ``not_found``."""
    key = cache_key(name, catalog_id, scope_type, execution_id)
    row = await db.fetchrow(DELETE_SQL, key)
    if row is None:
        return {"status": "not_found"}
    return {"status": "deleted", "cache_key": key}


async def list_entries(db: Executor, catalog_id: int) -> dict[str, Any]:
    """GET /api/keychain/catalog/{catalog_id}: metadata only, never data."""
    rows = await db.fetch(LIST_SQL, catalog_id)
    entries = []
    for r in rows:
        e: dict[str, Any] = {"keychain_name": r["keychain_name"], "scope_type": r["scope_type"]}
        if r["execution_id"] is not None:
            e["execution_id"] = str(r["execution_id"])
        if r["expires_at"] is not None:
            e["expires_at"] = rfc3339(r["expires_at"])
        e["expired"] = bool(r["expired"])
        e["access_count"] = r["access_count"]
        if r["accessed_at"] is not None:
            e["accessed_at"] = rfc3339(r["accessed_at"])
        e["created_at"] = rfc3339(r["created_at"])
        entries.append(e)
    return {"status": "success", "catalog_id": str(catalog_id), "entries": entries, "count": len(entries)}


# ------------------------------------------------------------------ the resolver's cache (§4.2 steps 5 and 7)


async def cache_get(db: Executor, cipher: EnvelopeCipher, key: str) -> CacheHit | None:
    """A live row: bump, then decrypt; no row or expired → None."""
    row = await db.fetchrow(BUMP_SQL, key)
    if row is None:
        return None
    data, kv = await cipher.open_with_version(row["data_encrypted"])
    return CacheHit(data=data, expires_at=to_utc(row["expires_at"]), kek_version=kv)


async def cache_put(db: Executor, cipher: EnvelopeCipher, write: CacheWrite) -> None:
    """Encrypt and upsert a resolver cache row (scope ``local``)."""
    await db.execute(
        UPSERT_SQL,
        write.cache_key,
        write.keychain_name,
        write.catalog_id,
        write.credential_type,
        write.cache_type,
        write.scope_type,
        write.execution_id,
        None,
        await cipher.seal(write.data),
        write.expires_at,
        False,
        None,
    )


__all__ = ["SCOPES", "KeychainSetIn", "cache_get", "cache_key", "cache_put"]
