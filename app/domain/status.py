"""Execution status union derived from event rows (server-contract §4.3, §13.6)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from app.domain.results import event_kind

__all__ = ["derive_status", "duration_human"]

_OK = frozenset({"COMPLETED", "COMPLETED".lower(), "success", "SUCCESS", "ok", "OK"})
_TERMINAL = {"completed": "COMPLETED", "failed": "FAILED", "cancelled": "CANCELLED"}


def duration_human(seconds: float) -> str:
    """`1h 2m 3s` style, seconds rounded, minimum `0s`."""
    total = max(0, round(seconds))
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    parts = [f"{h}h"] if h else []
    if m or h:
        parts.append(f"{m}m")
    parts.append(f"{s}s")
    return " ".join(parts)


def _ts(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def derive_status(
    execution_id: Any, events: Iterable[Mapping[str, Any]], *, commands_active: bool
) -> dict[str, Any]:
    """The status union from an execution's events (any order) and whether a command is still live."""
    rows = sorted(events, key=lambda e: int(e.get("event_id") or 0))
    terminal: str | None = None
    terminal_error: str | None = None
    entered: list[str] = []
    completed: list[str] = []
    failed_steps: list[str] = []
    running: set[str] = set()
    done_steps: set[str] = set()
    any_command_failed = False
    current: str | None = None
    step_error: str | None = None
    start_time = end_time = None
    for e in rows:
        etype = str(e.get("event_type") or "")
        kind = event_kind(etype)
        status = str(e.get("status") or "")
        node = e.get("node_name")
        created = _ts(e.get("created_at"))
        if created is not None:
            start_time = created if start_time is None or created < start_time else start_time
        if kind in _TERMINAL:
            terminal = _TERMINAL[kind]
            end_time = created or end_time
            ctx = (e.get("result") or {}).get("context") or {}
            terminal_error = e.get("error") or (ctx.get("error") if isinstance(ctx, Mapping) else None)
            continue
        if not isinstance(node, str) or node in ("playbook", "workflow", "cancel"):
            continue
        internal = node.endswith(":task_sequence")
        if etype == "step.enter" and node not in entered and not internal:
            entered.append(node)
            current = node
        if etype in ("command.claimed", "command.started") and status in ("RUNNING", "STARTED"):
            if node not in done_steps:
                running.add(node)
            current = node
        if etype in ("step.exit", "loop.done", "command.completed") and status in _OK:
            done_steps.add(node)
            running.discard(node)
            if not internal and node not in completed:
                completed.append(node)
        if status == "FAILED":
            done_steps.add(node)
            running.discard(node)
            if node not in failed_steps:
                failed_steps.append(node)
            current = node
            if etype == "command.failed":
                any_command_failed = True
            err = e.get("error") or ((e.get("result") or {}).get("context") or {}).get("error")
            if err and step_error is None:
                step_error = f"{node}: {err}" if isinstance(err, str) else f"{node}: {err!r}"
    inferred = False
    if terminal is None and not commands_active and rows:
        terminal = "FAILED" if any_command_failed else "COMPLETED"
        inferred = True
        end_time = _ts(rows[-1].get("created_at"))
    status = terminal or "RUNNING"
    if status == "RUNNING":
        end_time = None
    duration = (end_time - start_time).total_seconds() if start_time and end_time else 0.0
    error = None
    if status == "FAILED":
        # the failing step's own message is what the CLI should show; fall back to the terminal summary
        error = step_error or terminal_error
    return {
        "execution_id": str(execution_id),
        "status": status,
        "is_cancelled": status == "CANCELLED",
        "cancelled": status == "CANCELLED",
        # The official CLI 5.3.2 shows RUNNING unless `completed` is true, and FAILED only when
        # `failed` is also true: `completed` therefore means "terminal" (see ARCHITECTURE.md decisions).
        "completed": status in ("COMPLETED", "FAILED", "CANCELLED"),
        "failed": status == "FAILED",
        "completion_inferred": inferred,
        "current_step": current,
        "completed_steps": completed,
        "progress": {
            "total_steps": len(entered),
            "completed_steps": len(completed),
            "running_steps": len(running - done_steps),
            "failed_steps": len(failed_steps),
        },
        "start_time": _iso(start_time),
        "end_time": _iso(end_time),
        "duration_seconds": duration,
        "duration_human": duration_human(duration),
        "error": error,
        "source": "event_log",
    }
