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


# The execution row after a pass ($5 execution_id, $6 status, $7 state, $8 state_seq so far, $9 last
# event id, $10 last type, $11 last node, $12 terminal, $13 error, $14 result). state_seq also covers
# the seqs the decision's own events get in this statement.
_UPDATE_EXECUTION = """
UPDATE execution SET status = CASE WHEN status IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN status ELSE $6 END,
       state = $7, state_seq = GREATEST($8::bigint, (SELECT max(seq) FROM ins)),
       last_event_id = GREATEST(COALESCE(last_event_id, 0), $9),
       last_event_type = COALESCE($10, last_event_type), last_node_name = COALESCE($11, last_node_name),
       end_time = CASE WHEN $12 THEN COALESCE(end_time, now()) ELSE end_time END,
       error = COALESCE($13, error), result = COALESCE($14, result), updated_at = now()
 WHERE execution_id = $5
"""

INSERT_DECISION_AND_EXECUTION = (
    INSERT_DECISION.replace(") SELECT event_id, seq FROM ins", "")
    + "), ex AS ("
    + _UPDATE_EXECUTION
    + ") SELECT event_id, seq FROM ins"
)


async def insert_decision(
    conn: Conn,
    events: list[dict[str, Any]],
    mirror: list[dict[str, Any]],
    commands: list[dict[str, Any]],
    notifications: list[dict[str, Any]],
    execution_update: tuple[Any, ...] | None = None,
) -> dict[int, int]:
    """One orchestration pass's events, mirror rows, command rows and notifications in one round trip.

    With `execution_update` (the ten UPDATE_EXECUTION_SQL arguments, execution id first) the execution
    row is updated by the same statement."""
    if execution_update is None:
        recs = await conn.fetch(INSERT_DECISION, events, mirror, commands, notifications)
    else:
        recs = await conn.fetch(
            INSERT_DECISION_AND_EXECUTION, events, mirror, commands, notifications, *execution_update
        )
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


# The command projection of newly stored events as one UPDATE over a recordset. kind: started / final /
# claimed / touch, the four updates events._project_command issues one by one. A row cannot be updated
# twice in one statement, so per command only the last (by ord) of the newly inserted rows applies:
# callers send repeats of a command only when that equals applying them in order (touches, then at
# most one final last: a final overwrites everything a touch sets).
COMMAND_UPDATE_COLUMNS = (
    "command_id bigint, event_id bigint, ord int, kind text, final text, result jsonb, error text, "
    "worker_id text"
)

_PROJECT_COMMANDS = f"""
UPDATE command c SET
       status = CASE u.kind WHEN 'started' THEN 'RUNNING' WHEN 'final' THEN u.final
                            WHEN 'claimed' THEN 'CLAIMED' ELSE c.status END,
       started_at = CASE WHEN u.kind = 'started' THEN COALESCE(c.started_at, now()) ELSE c.started_at END,
       completed_at = CASE WHEN u.kind = 'final' THEN now() ELSE c.completed_at END,
       result = CASE WHEN u.kind = 'final' THEN u.result ELSE c.result END,
       error = CASE WHEN u.kind = 'final' THEN u.error ELSE c.error END,
       worker_id = CASE WHEN u.kind = 'claimed' THEN u.worker_id ELSE c.worker_id END,
       claimed_at = CASE WHEN u.kind = 'claimed' THEN now() ELSE c.claimed_at END,
       latest_event_id = u.event_id, updated_at = now()
  FROM (SELECT DISTINCT ON (r.command_id) r.* FROM jsonb_to_recordset($3::jsonb) AS r({COMMAND_UPDATE_COLUMNS})
         WHERE r.event_id IN (SELECT event_id FROM ins) ORDER BY r.command_id, r.ord DESC) AS u
 WHERE c.execution_id = $4 AND c.command_id = u.command_id
   AND (u.kind <> 'started' OR c.status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED'))
   AND (u.kind <> 'claimed' OR c.status = 'PENDING')
"""

ENGINE_COLUMNS = (
    "event_id, event_type, node_id, node_name, node_type, status, result, context, meta, error, "
    "parent_event_id, parent_execution_id, command_id, worker_id, created_at, seq"
)

# app.timefmt.rfc3339 of a naive-UTC timestamp column: seconds, then .fff or .ffffff only when needed.
_US = "(extract(microseconds FROM {c})::int % 1000000)"
_RFC3339 = (
    "to_char({c}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN " + _US + " = 0 THEN 'Z' "
    "WHEN " + _US + " % 1000 = 0 THEN '.' || lpad((" + _US + " / 1000)::text, 3, '0') || 'Z' "
    "ELSE '.' || lpad(" + _US + "::text, 6, '0') || 'Z' END"
)

# eventlog.mirror_envelope built from the inserted rows themselves ($2 subject, NULL: mirror off;
# $5 ingest_time): the row is not encoded and sent a second time. Rows from events.Ingest carry no
# tenant or organization, so one subject serves them all.
_MIRROR_FROM_INS = (
    "INSERT INTO outbox (execution_id, event_id, kind, subject, payload, payload_codec) "
    "SELECT i.execution_id, i.event_id, 'event', $2::text, jsonb_build_object("
    "'catalog_id', i.catalog_id, 'command_id', i.command_id, 'created_at', i.ts, 'event_id', i.event_id, "
    "'event_time', i.ts, 'event_type', i.event_type, 'execution_id', i.execution_id, 'frame_id', NULL, "
    "'ingest_time', $5::text, 'meta', i.meta, 'node_id', i.node_id, 'node_name', i.node_name, "
    "'parent_event_id', i.parent_event_id, 'parent_execution_id', i.parent_execution_id, "
    "'result', i.result, 'stage_id', NULL, 'status', i.status), 'json' "
    "FROM (SELECT ins.*, " + _RFC3339.format(c="ins.created_at") + " AS ts FROM ins) AS i "
    "WHERE $2::text IS NOT NULL ORDER BY i.seq ON CONFLICT (event_id, kind) DO NOTHING"
)

_INGEST_HEAD = (
    "WITH ins AS ("
    + INSERT_EVENTS.replace(
        "RETURNING event_id, seq", "RETURNING " + ENGINE_COLUMNS + ", execution_id, catalog_id"
    )
    + "), ob AS ("
    + _MIRROR_FROM_INS
    + "), cu AS ("
    + _PROJECT_COMMANDS
    + ") "
)

INGEST_EVENTS = _INGEST_HEAD + "SELECT true AS new, event_id, seq FROM ins"

# The same, plus every event stored since the execution's folded state: the rows an
# orchestration pass folds, read in the statement that writes the new ones (which it cannot see yet).
# $6 = state_seq.
INGEST_EVENTS_FOR_PASS = (
    _INGEST_HEAD
    + f"SELECT * FROM (SELECT true AS new, {ENGINE_COLUMNS} FROM ins UNION ALL "
    + f"SELECT false AS new, {ENGINE_COLUMNS} FROM event WHERE execution_id = $4 AND seq > $6) AS u ORDER BY seq"
)


async def ingest_events(
    conn: Conn,
    execution_id: int,
    rows: list[dict[str, Any]],
    mirror_subject: str | None,
    ingest_time: str,
    command_updates: list[dict[str, Any]],
    since_seq: int | None = None,
) -> list[Any]:
    """Events of one execution, their mirror rows (unless the subject is None) and the command projection
    of the new ones, in one round trip.

    Returns records with `new` (inserted now) and `event_id`, `seq`; with `since_seq`, every engine
    column too, plus the events stored earlier with seq > since_seq, all in seq order."""
    args = (rows, mirror_subject, command_updates, execution_id, ingest_time)
    if since_seq is None:
        return list(await conn.fetch(INGEST_EVENTS, *args))
    return list(await conn.fetch(INGEST_EVENTS_FOR_PASS, *args, since_seq))
