"""SSE frames (gateway.md §10.2–§10.5): JSON-RPC payloads and the mirror-event mapping."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

FORWARDED_EVENT_TYPES = frozenset(
    {"step.exit", "playbook.completed", "playbook.failed", "calendar.event.touched"}
)


def now_iso() -> str:
    """RFC 3339 with a +00:00 offset."""
    return datetime.now(UTC).isoformat()


def compact(data: Any) -> str:
    """Compact JSON text."""
    return json.dumps(data, separators=(",", ":"), default=str)


def notification(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """A JSON-RPC notification."""
    return {"jsonrpc": "2.0", "method": method, "params": params}


def error_payload(code: int, message: str) -> dict[str, Any]:
    """A JSON-RPC error without id."""
    return {"jsonrpc": "2.0", "error": {"code": code, "message": message}}


def _first_str(d: dict[str, Any], *keys: str) -> str | None:
    for k in keys:
        v = d.get(k)
        if isinstance(v, str) and v.strip():
            return v
        if isinstance(v, int) and not isinstance(v, bool) and k in {"execution_id", "executionId", "id"}:
            return str(v)
    return None


def state_from_event(envelope: Any, subject: str, prefix: str) -> dict[str, Any] | None:
    """The playbook/state params of a mirror event, or None when it is not forwarded (§10.5)."""
    if not isinstance(envelope, dict):
        return None
    event_type = _first_str(envelope, "event_type", "type", "name")
    if event_type not in FORWARDED_EVENT_TYPES:
        return None
    eid = _first_str(envelope, "execution_id", "executionId", "id")
    if eid is None:
        tokens = subject[len(prefix) :].split(".") if subject.startswith(prefix) else []
        eid = tokens[2] if len(tokens) > 2 else None
    if eid is None:
        return None
    status = envelope.get("status")
    if isinstance(status, str) and status.strip():
        status = status.lower()
    else:
        status = {"playbook.failed": "failed", "playbook.completed": "completed"}.get(event_type, "running")
    at = _first_str(envelope, "at", "timestamp", "created_at", "createdAt") or now_iso()
    return {
        "execution_id": eid,
        "event_type": event_type,
        "step_name": _first_str(envelope, "step_name", "stepName", "node_name", "nodeName", "step"),
        "status": status,
        "at": at,
    }


def synthetic_state(execution_id: str | None, failed: bool) -> dict[str, Any]:
    """The state frame that precedes a playbook/result (§10.4)."""
    return {
        "execution_id": execution_id,
        "event_type": "playbook.failed" if failed else "playbook.completed",
        "step_name": None,
        "status": "failed" if failed else "completed",
        "at": now_iso(),
    }
