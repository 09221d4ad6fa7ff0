"""Event rows: status canonicalisation, the mirror envelope and subject, and the append primitive."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from app.config import Settings
from app.db.types import Conn
from app.store.rows import insert_events, insert_events_with_mirror
from app.timefmt import rfc3339

ERROR_STATUSES = frozenset({"error", "failed", "failure", "fail"})
SUCCESS_STATUSES = frozenset({"success", "ok", "completed", "complete", "done"})

STARTED_TYPES = frozenset({"playbook_started", "playbook.initialized", "workflow.initialized"})
COMPLETED_TYPES = frozenset({"playbook.completed", "playbook_completed", "workflow.completed"})
FAILED_TYPES = frozenset({"playbook.failed", "playbook_failed", "workflow.failed"})
CANCELLED_TYPES = frozenset({"playbook.cancelled", "playbook_cancelled", "execution.cancelled"})
TERMINAL_TYPES = COMPLETED_TYPES | FAILED_TYPES | CANCELLED_TYPES
TRIGGER_TYPES = frozenset({"command.completed", "command.failed"})

_TOKEN = re.compile(r"[^A-Za-z0-9_-]")


def canonical_status(event_type: str, producer_status: str | None) -> str:
    """Upper-case stored status (server-contract §13.4)."""
    if producer_status:
        low = producer_status.strip().lower()
        if low in ERROR_STATUSES:
            return "FAILED"
        if low in SUCCESS_STATUSES:
            return "COMPLETED"
        return producer_status.strip().upper()
    name = event_type.lower()
    if "error" in name or "failed" in name:
        return "FAILED"
    if "done" in name or "exit" in name or "completed" in name:
        return "COMPLETED"
    return "RUNNING"


def terminal_status(event_type: str) -> str | None:
    """COMPLETED / FAILED / CANCELLED for a terminal event spelling, else None."""
    if event_type in COMPLETED_TYPES:
        return "COMPLETED"
    if event_type in FAILED_TYPES:
        return "FAILED"
    if event_type in CANCELLED_TYPES:
        return "CANCELLED"
    return None


def _token(value: Any, empty: str) -> str:
    text = "" if value is None else str(value)
    text = _TOKEN.sub("-", text)
    return text or empty


def mirror_subject(settings: Settings, row: dict[str, Any]) -> str:
    """noetl.events.<tenant>.<org>.<execution_id>.<shard> (plain modulo shard, §14.5)."""
    eid = row.get("execution_id")
    shard = int(eid) % settings.nats.event_shard_count if eid is not None else 0
    return ".".join(
        [
            settings.nats.event_subject_prefix,
            _token(row.get("tenant_id"), "default"),
            _token(row.get("organization_id"), "default"),
            _token(eid, "none"),
            str(shard),
        ]
    )


def mirror_envelope(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The outbox payload of an event (§14.1), keys sorted, datetimes as strings."""
    created = row.get("created_at")
    created_s = rfc3339(created) if isinstance(created, datetime) else created
    env = {
        "catalog_id": row.get("catalog_id"),
        "command_id": row.get("command_id"),
        "created_at": created_s,
        "event_id": row["event_id"],
        "event_time": created_s,
        "event_type": row.get("event_type"),
        "execution_id": row.get("execution_id"),
        "frame_id": None,
        "ingest_time": rfc3339(now),
        "meta": row.get("meta"),
        "node_id": row.get("node_id"),
        "node_name": row.get("node_name"),
        "parent_event_id": row.get("parent_event_id"),
        "parent_execution_id": row.get("parent_execution_id"),
        "result": row.get("result"),
        "stage_id": None,
        "status": row.get("status"),
    }
    return dict(sorted(env.items()))


def naive_utc(value: datetime) -> datetime:
    """The event table's created_at is naive UTC."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


async def append_events(
    conn: Conn, settings: Settings, rows: list[dict[str, Any]], now: datetime | None = None
) -> dict[int, int]:
    """Insert events idempotently and, with the mirror on, their outbox rows in the same statement.

    The caller holds pg_advisory_xact_lock(execution_id) (rule 4 of ARCHITECTURE.md)."""
    if not settings.server.event_mirror_enabled:
        return await insert_events(conn, rows)
    return await insert_events_with_mirror(conn, rows, mirror_rows(settings, rows, now))


def mirror_rows(
    settings: Settings, rows: list[dict[str, Any]], now: datetime | None = None
) -> list[dict[str, Any]]:
    """The outbox rows that mirror these events to NOETL_EVENTS (empty when the mirror is off)."""
    if not settings.server.event_mirror_enabled:
        return []
    ts = now or datetime.now(UTC)
    return [
        {
            "execution_id": r.get("execution_id"),
            "event_id": r["event_id"],
            "kind": "event",
            "subject": mirror_subject(settings, r),
            "payload": mirror_envelope(r, ts),
            "payload_codec": "json",
        }
        for r in rows
    ]
