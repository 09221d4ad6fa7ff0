"""The asyncpg pool; JSON codecs and the schema search_path are set per connection."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from app.config import DatabaseSettings


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=_dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=_dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset hook: nothing to undo, so no reset query (asyncpg still rolls back open transactions).

    The default reset sends `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on every
    release: one more round trip per request. Pool connections never hold session state: locks are
    transaction-scoped (pg_advisory_xact_lock), nothing LISTENs, SETs are LOCAL, cursors live in
    transactions, and the search_path is a connect-time setting that RESET ALL would keep anyway."""


async def create_pool(
    db: DatabaseSettings,
    schema: str,
    *,
    application_name: str = "noetl-control-plane",
    min_size: int | None = None,
    max_size: int | None = None,
) -> asyncpg.Pool:
    """Open the platform pool (POSTGRES_MIN/MAX_CONNECTIONS, POSTGRES_ACQUIRE_TIMEOUT)."""
    pool = await asyncpg.create_pool(
        dsn=db.dsn,
        min_size=db.min_connections if min_size is None else min_size,
        max_size=db.max_connections if max_size is None else max_size,
        timeout=db.acquire_timeout,
        init=_init_connection,
        reset=_keep_session,
        server_settings={"search_path": f"{schema},public", "application_name": application_name},
    )
    assert pool is not None
    return pool


async def connect(dsn: str, schema: str) -> asyncpg.Connection:
    """One connection with the same codecs and search_path as the pool."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": f"{schema},public"})
    await _init_connection(conn)
    return conn
