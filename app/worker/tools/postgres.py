"""The `postgres` tool (playbook-dsl.md §2.3.3) against a database the playbook names (not the platform DB)."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg

from app.worker.credentials import postgres_params
from app.worker.tools._auth import resolve_auth
from app.worker.tools._cancel import cancellable, seconds
from app.worker.tools.base import ToolContext, ToolError
from app.worker.tools.sql_split import split_statements

CONNECT_TIMEOUT = 15.0
CLOSE_TIMEOUT = 5.0
_INLINE = ("host", "port", "user", "password", "database", "dsn", "connection_string")


def _jsonable(value: Any) -> Any:
    """Result values as JSON-friendly types (numerics as numbers, times as ISO 8601, bytes as base64)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() and value.is_finite() else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


async def _connect_params(config: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    credential = await resolve_auth(config.get("auth"), ctx.credentials, want="postgres")
    params = postgres_params(credential) if credential else {}
    inline = postgres_params({"data": {k: config[k] for k in config if k in _INLINE or k.startswith("db_")}})
    params.update(inline)
    if not params:
        raise ToolError("postgres: no connection (set auth to a postgres credential)", code="invalid_config")
    return params


async def _init(conn: asyncpg.Connection) -> None:
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(typ, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


def _affected(status: str | None) -> int:
    # Command tags end with the row count (`INSERT 0 3`, `UPDATE 2`); DDL tags have none.
    last = (status or "").rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


async def _run_script(
    conn: asyncpg.Connection, statements: list[str], params: list[Any], as_objects: bool
) -> Any:
    if len(statements) > 1:
        await conn.execute(";\n".join(statements[:-1]))
    stmt = await conn.prepare(statements[-1])
    columns = [a.name for a in stmt.get_attributes()]
    if columns:
        records = await stmt.fetch(*params)
        rows: list[Any] = [
            {c: _jsonable(v) for c, v in zip(columns, r.values(), strict=True)}
            if as_objects
            else [_jsonable(v) for v in r.values()]
            for r in records
        ]
        return {"columns": columns, "rows": rows, "row_count": len(rows)}
    await stmt.fetch(*params)
    n = _affected(stmt.get_statusmsg())
    return {"affected_rows": n, "row_count": n}


async def run(config: dict[str, Any], ctx: ToolContext) -> Any:
    """Run the command; SQL errors raise ToolError with the database message and code = SQLSTATE."""
    command = config.get("command", config.get("query", config.get("sql")))
    if not isinstance(command, str) or not command.strip():
        raise ToolError("postgres: command is required", code="invalid_config")
    statements = split_statements(command)
    if not statements:
        raise ToolError("postgres: command has no statements", code="invalid_config")
    params = config.get("params") or []
    if not isinstance(params, list):
        raise ToolError("postgres: params must be a list (positional, $1, $2, …)", code="invalid_config")
    as_objects = config.get("as_objects", True) is not False
    connect = await _connect_params(config, ctx)
    schema = config.get("schema")
    if isinstance(schema, str) and schema.strip():
        connect["server_settings"] = {"search_path": schema.strip()}
    raw_spec = config.get("spec")
    spec: Mapping[str, Any] = raw_spec if isinstance(raw_spec, Mapping) else {}
    timeout = seconds(config.get("timeout", config.get("timeout_seconds", spec.get("timeout"))))
    timeout = timeout or ctx.timeout_seconds

    async def work() -> Any:
        conn = await asyncpg.connect(timeout=CONNECT_TIMEOUT, **connect)
        try:
            await _init(conn)
            result = await _run_script(conn, statements, params, as_objects)
        except BaseException:
            # On task cancellation asyncpg sends the server a CancelRequest from a background task;
            # terminate() would cancel that task, so close gracefully (which lets it finish) first.
            try:
                await conn.close(timeout=CLOSE_TIMEOUT)
            except BaseException:
                conn.terminate()
            raise
        await conn.close()
        return result

    try:
        return await cancellable(work(), ctx, timeout=timeout)
    except asyncpg.PostgresError as exc:
        code = getattr(exc, "sqlstate", None)
        raise ToolError(str(exc.args[0]) if exc.args else str(exc), code=code) from None
    except (OSError, asyncpg.InterfaceError, TimeoutError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ToolError(f"postgres: connection failed: {reason}", code="connection") from None
