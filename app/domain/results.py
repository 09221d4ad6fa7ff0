"""Extraction of step outputs from worker events, and event-name/status normalisation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.domain.templating import ResultDict

__all__ = [
    "ERROR_STATUSES",
    "Output",
    "canonical_status",
    "command_id_of",
    "event_kind",
    "extract_output",
    "wrap_result",
]

ERROR_STATUSES = frozenset({"error", "failed", "failure"})
_ENVELOPE_KEYS = frozenset(
    {
        "status",
        "data",
        "error",
        "stdout",
        "stderr",
        "exit_code",
        "duration_ms",
        "meta",
        "_context_updates",
        "ctx",
        "http",
        "context",
        "reference",
        "extracted",
    }
)

START_NAMES = frozenset({"playbook_started", "playbook.initialized", "workflow.initialized"})
COMPLETED_NAMES = frozenset({"playbook.completed", "playbook_completed", "workflow.completed"})
FAILED_NAMES = frozenset({"playbook.failed", "playbook_failed", "workflow.failed"})
CANCELLED_NAMES = frozenset({"playbook.cancelled", "playbook_cancelled", "execution.cancelled"})


def event_kind(event_type: str) -> str:
    """Fold every accepted spelling of an execution-level event to one name (server-contract §13.3)."""
    if event_type in START_NAMES:
        return "start"
    if event_type in COMPLETED_NAMES:
        return "completed"
    if event_type in FAILED_NAMES:
        return "failed"
    if event_type in CANCELLED_NAMES:
        return "cancelled"
    return event_type


def canonical_status(event_type: str, producer_status: str | None) -> str:
    """Canonical upper-case status of an event (server-contract §13.4)."""
    if producer_status:
        low = producer_status.strip().lower()
        if low in ERROR_STATUSES:
            return "FAILED"
        if low in ("success", "ok", "completed"):
            return "COMPLETED"
        return producer_status.strip().upper()
    name = event_type.lower()
    if "error" in name or "failed" in name:
        return "FAILED"
    if "done" in name or "exit" in name or "completed" in name:
        return "COMPLETED"
    return "RUNNING"


def parse_command_id(value: Any, issued_by_event: Mapping[int, int] | None = None) -> int | None:
    """Accept a command id as an int, a digit string or the legacy `<exec>:<step>:<event_id>[:i<n>]` form."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        s = value.strip()
        if s.isdigit():
            return int(s)
        parts = s.split(":")
        if len(parts) >= 3 and parts[2].isdigit():
            ev = int(parts[2])
            if issued_by_event is not None and ev in issued_by_event:
                return issued_by_event[ev]
            return None
    return None


def payload_of(event: Mapping[str, Any]) -> dict[str, Any]:
    """The producer payload of an event row (`result.context`), or an empty mapping."""
    result = event.get("result")
    if isinstance(result, Mapping):
        ctx = result.get("context")
        if isinstance(ctx, Mapping):
            return dict(ctx)
    return {}


def command_id_of(event: Mapping[str, Any], issued_by_event: Mapping[int, int] | None = None) -> int | None:
    """The command id of a lifecycle event: column, then meta, then payload."""
    for source in (
        event.get("command_id"),
        (event.get("meta") or {}).get("command_id"),
        payload_of(event).get("command_id"),
    ):
        cid = parse_command_id(source, issued_by_event)
        if cid is not None:
            return cid
    return None


class Output:
    """A step output read from a worker event: data, ctx writes, error and error flag."""

    __slots__ = ("ctx_updates", "data", "error", "has_data", "is_error")

    def __init__(self) -> None:
        self.data: Any = None
        self.has_data = False
        self.ctx_updates: dict[str, Any] = {}
        self.error: Any = None
        self.is_error = False


def _is_envelope(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and "status" in value
        and set(value) <= _ENVELOPE_KEYS
        and ("data" in value or "context" in value or "reference" in value or "error" in value)
    )


def _from_reference(value: Mapping[str, Any]) -> dict[str, Any]:
    ref = value.get("reference")
    extracted = value.get("extracted")
    out: dict[str, Any] = dict(extracted) if isinstance(extracted, Mapping) else {}
    out["_ref"] = ref
    if isinstance(ref, Mapping):
        out["_store"] = ref.get("store") or ref.get("store_tier")
        out["_preview"] = ref.get("preview")
    return out


def _take_updates(out: Output, holder: Any, pipeline: bool) -> None:
    if not isinstance(holder, Mapping):
        return
    for key in ("_context_updates", "ctx") if pipeline else ("_context_updates",):
        upd = holder.get(key)
        if isinstance(upd, Mapping):
            out.ctx_updates.update(upd)


def _set_data(out: Output, value: Any, pipeline: bool) -> None:
    if isinstance(value, Mapping) and "reference" in value and "status" not in value:
        value = _from_reference(value)
    if isinstance(value, Mapping) and ("_context_updates" in value or (pipeline and "ctx" in value)):
        _take_updates(out, value, pipeline)
        value = {k: v for k, v in value.items() if k != "_context_updates" and not (pipeline and k == "ctx")}
    out.data = value
    out.has_data = True


def _read_envelope(out: Output, env: Mapping[str, Any], pipeline: bool) -> None:
    status = env.get("status")
    if isinstance(status, str) and status.lower() in ERROR_STATUSES:
        out.is_error = True
        out.error = env.get("error") or out.error
    _take_updates(out, env, True)
    if "context" in env:
        _set_data(out, env["context"], pipeline)
    elif "data" in env:
        _set_data(out, env["data"], pipeline)
    elif "reference" in env:
        _set_data(out, _from_reference(env), pipeline)


def extract_output(event: Mapping[str, Any], *, pipeline: bool = False) -> Output:
    """Read a step output from call.done / call.error / command.completed / command.failed rows.

    Accepts `result.{context|data|reference}` (project and Rust worker), `response` (NoETL Python
    worker) and `result` in command.completed payloads; ctx writes from `_context_updates` or `ctx`.
    """
    out = Output()
    payload = payload_of(event)
    meta = event.get("meta") or {}
    producer = meta.get("producer_status") if isinstance(meta, Mapping) else None
    for status in (producer, payload.get("status"), event.get("status")):
        if isinstance(status, str) and status.lower() in ERROR_STATUSES:
            out.is_error = True
    err = event.get("error") or payload.get("error")
    if err:
        out.error = err
    result = payload.get("result")
    response = payload.get("response")
    if isinstance(response, Mapping) and _is_envelope(response):
        _read_envelope(out, response, pipeline)
    elif response is not None:
        _set_data(out, response, pipeline)
    if not out.has_data and result is not None:
        if isinstance(result, Mapping) and _is_envelope(result):
            _read_envelope(out, result, pipeline)
        else:
            _set_data(out, result, pipeline)
    _take_updates(out, payload, pipeline)
    if out.is_error and out.error is None:
        out.error = payload.get("message") or "command failed"
    return out


def wrap_result(value: Any) -> Any:
    """Wrap an object result so that templates get the `.data` alias (dsl §3.4)."""
    if isinstance(value, dict) and type(value) is not ResultDict:
        return ResultDict(value)
    return value
