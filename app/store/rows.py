"""Bulk row writes through jsonb_to_recordset: one round trip for any number of rows."""

from __future__ import annotations

from typing import Any

from app.db.types import Conn

EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("execution_id", "bigint"),
    ("catalog_id", "bigint"),
    ("event_id", "bigint"),
    ("parent_event_id", "bigint"),
    ("parent_execution_id", "bigint"),
    ("created_at", "timestamp"),
    ("event_type", "varchar"),
    ("node_id", "varchar"),
    ("node_name", "varchar"),
    ("node_type", "varchar"),
    ("status", "varchar"),
    ("context", "jsonb"),
    ("result", "jsonb"),
    ("meta", "jsonb"),
    ("error", "text"),
    ("worker_id", "varchar"),
    ("command_id", "bigint"),
    ("prev_event_id", "bigint"),
    ("duration", "float8"),
    ("tenant_id", "text"),
    ("organization_id", "text"),
    ("stack_trace", "text"),
    ("trace_component", "jsonb"),
)

COMMAND_COLUMNS: tuple[tuple[str, str], ...] = (
    ("command_id", "bigint"),
    ("event_id", "bigint"),
    ("execution_id", "bigint"),
    ("catalog_id", "bigint"),
    ("parent_execution_id", "bigint"),
    ("step_name", "text"),
    ("tool_kind", "text"),
    ("status", "text"),
    ("context", "jsonb"),
    ("meta", "jsonb"),
    ("loop_event_id", "text"),
    ("iter_index", "int"),
    ("latest_event_id", "bigint"),
    ("prev_event_id", "bigint"),
)

OUTBOX_COLUMNS: tuple[tuple[str, str], ...] = (
    ("execution_id", "bigint"),
    ("event_id", "bigint"),
    ("kind", "text"),
    ("subject", "text"),
    ("payload", "jsonb"),
    ("payload_codec", "text"),
)


# jsonb_to_recordset yields NULL for absent keys, so column defaults are restated here.
_DEFAULTS = {
    "tenant_id": "'default'",
    "organization_id": "'default'",
    "created_at": "(now() AT TIME ZONE 'utc')",
    "status": "'PENDING'",
    "payload_codec": "'json'",
    "kind": "'event'",
}


def _recordset_sql(table: str, columns: tuple[tuple[str, str], ...], suffix: str) -> str:
    names = ", ".join(c for c, _ in columns)
    select = ", ".join(f"COALESCE(x.{c}, {_DEFAULTS[c]})" if c in _DEFAULTS else f"x.{c}" for c, _ in columns)
    typed = ", ".join(f"{c} {t}" for c, t in columns)
    return f"INSERT INTO {table} ({names}) SELECT {select} FROM jsonb_to_recordset($1::jsonb) AS x({typed}) {suffix}"


INSERT_EVENTS = _recordset_sql(
    "event", EVENT_COLUMNS, "ON CONFLICT (execution_id, event_id) DO NOTHING RETURNING event_id, seq"
)
INSERT_COMMANDS = _recordset_sql(
    "command", COMMAND_COLUMNS, "ON CONFLICT (execution_id, command_id) DO NOTHING"
)
INSERT_OUTBOX = _recordset_sql("outbox", OUTBOX_COLUMNS, "ON CONFLICT (event_id, kind) DO NOTHING")


INSERT_EVENTS_WITH_MIRROR = (
    "WITH ins AS ("
    + INSERT_EVENTS
    + "), ob AS ("
    + _recordset_sql(
        "outbox",
        OUTBOX_COLUMNS,
        "WHERE x.event_id IN (SELECT event_id FROM ins) ON CONFLICT (event_id, kind) DO NOTHING",
    ).replace("$1", "$2")
    + ") SELECT event_id, seq FROM ins"
)


async def insert_events_with_mirror(
    conn: Conn, rows: list[dict[str, Any]], mirror: list[dict[str, Any]]
) -> dict[int, int]:
    """Insert events and the mirror outbox rows of the newly inserted ones in one round trip.

    Returns {event_id: seq} of the rows that were new."""
    if not rows:
        return {}
    recs = await conn.fetch(INSERT_EVENTS_WITH_MIRROR, rows, mirror)
    return {r["event_id"]: r["seq"] for r in recs}


async def insert_events(conn: Conn, rows: list[dict[str, Any]]) -> dict[int, int]:
    """Insert events idempotently; return {event_id: seq} of the new ones."""
    if not rows:
        return {}
    recs = await conn.fetch(INSERT_EVENTS, rows)
    return {r["event_id"]: r["seq"] for r in recs}


INSERT_COMMANDS_WITH_OUTBOX = (
    "WITH c AS ("
    + INSERT_COMMANDS
    + "), o AS ("
    + _recordset_sql("outbox", OUTBOX_COLUMNS, "ON CONFLICT (event_id, kind) DO NOTHING").replace("$1", "$2")
    + ") SELECT 1"
)


INSERT_DECISION = (
    "WITH ins AS ("
    + INSERT_EVENTS
    + "), ob AS ("
    + _recordset_sql(
        "outbox",
        OUTBOX_COLUMNS,
        "WHERE x.event_id IN (SELECT event_id FROM ins) ON CONFLICT (event_id, kind) DO NOTHING",
    ).replace("$1", "$2")
    + "), c AS ("
    + INSERT_COMMANDS.replace("$1", "$3")
    + "), co AS ("
    + _recordset_sql("outbox", OUTBOX_COLUMNS, "ON CONFLICT (event_id, kind) DO NOTHING").replace("$1", "$4")
    + ") SELECT event_id, seq FROM ins"
)


async def insert_decision(
    conn: Conn,
    events: list[dict[str, Any]],
    mirror: list[dict[str, Any]],
    commands: list[dict[str, Any]],
    notifications: list[dict[str, Any]],
) -> dict[int, int]:
    """One orchestration pass's events, mirror rows, command rows and notifications in one round trip."""
    recs = await conn.fetch(INSERT_DECISION, events, mirror, commands, notifications)
    return {r["event_id"]: r["seq"] for r in recs}


async def insert_commands_with_outbox(
    conn: Conn, rows: list[dict[str, Any]], outbox: list[dict[str, Any]]
) -> None:
    """Command rows and their notification outbox rows in one round trip."""
    if rows:
        await conn.execute(INSERT_COMMANDS_WITH_OUTBOX, rows, outbox)


async def insert_commands(conn: Conn, rows: list[dict[str, Any]]) -> None:
    """Insert command projection rows."""
    if rows:
        await conn.execute(INSERT_COMMANDS, rows)


async def insert_outbox(conn: Conn, rows: list[dict[str, Any]]) -> None:
    """Insert outbox rows (mirror events and command notifications)."""
    if rows:
        await conn.execute(INSERT_OUTBOX, rows)
