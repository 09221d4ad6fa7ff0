"""The `playbook` tool (playbook-dsl.md §2.3.8, §4.11): start a child execution, optionally wait for it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from app.domain.results import extract_output
from app.worker.credentials import http_status
from app.worker.tools._cancel import seconds
from app.worker.tools.base import ToolCancelled, ToolContext, ToolError

TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
DEFAULT_WAIT = 300.0
DEFAULT_RESULT_WAIT = 180.0
DEFAULT_POLL = 2.0
EVENTS_PAGE = 500
MAX_EVENT_PAGES = 20  # bounded scan for result_step: 10k events newest first


def _child_payload(config: Mapping[str, Any]) -> dict[str, Any]:
    for key in ("input", "args", "payload"):
        value = config.get(key)
        if isinstance(value, Mapping) and value:
            return dict(value)
    return {}


def _execute_body(config: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    body: dict[str, Any] = {"payload": _child_payload(config), "resource_kind": "playbook"}
    if config.get("catalog_id") not in (None, ""):
        body["catalog_id"] = str(config["catalog_id"])
    path = config.get("path")
    if isinstance(path, str) and path.strip():
        body["path"] = path.strip()
    if "path" not in body and "catalog_id" not in body:
        raise ToolError("playbook: path or catalog_id is required", code="invalid_config")
    if config.get("version") not in (None, "", "latest"):
        try:
            body["version"] = int(config["version"])
        except (TypeError, ValueError):
            raise ToolError("playbook: version must be an integer", code="invalid_config") from None
    parent = config.get("parent_execution_id")
    body["parent_execution_id"] = str(parent if parent not in (None, "") else ctx.execution_id)
    return body


async def _sleep_or_cancel(ctx: ToolContext, delay: float) -> None:
    try:
        await asyncio.wait_for(ctx.cancelled.wait(), timeout=delay)
    except TimeoutError:
        return
    raise ToolCancelled()


async def _wait_terminal(ctx: ToolContext, child: str, timeout: float, poll: float) -> dict[str, Any] | None:
    """The child's status summary once terminal, or None when `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while True:
        if ctx.cancelled.is_set():
            raise ToolCancelled()
        try:
            status = await ctx.api.get_json(f"/api/executions/{child}/status")
        except Exception as exc:
            # Right after the start the status may not be readable yet; keep polling until the deadline.
            if http_status(exc) != 404:
                raise ToolError(f"playbook: status of child {child} unavailable", code="api_error") from None
            status = None
        if isinstance(status, Mapping) and str(status.get("status", "")).upper() in TERMINAL:
            return dict(status)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        await _sleep_or_cancel(ctx, min(poll, remaining))


async def _result_of(ctx: ToolContext, child: str, result_step: str | None) -> Any:
    """The child's result: the newest call.done of `result_step`, else of the newest step with data."""
    for page in range(1, MAX_EVENT_PAGES + 1):
        body = await ctx.api.get_json(
            f"/api/executions/{child}/events",
            {"event_type": "call.done", "page": str(page), "page_size": str(EVENTS_PAGE)},
        )
        events = body.get("events") if isinstance(body, Mapping) else None
        for event in events or []:
            if result_step and event.get("node_name") != result_step:
                continue
            out = extract_output(event)
            if out.has_data and out.data not in (None, {}, []) and not out.is_error:
                return out.data
        if not (isinstance(body, Mapping) and (body.get("pagination") or {}).get("has_next")):
            break
    if result_step:
        raise ToolError(f"playbook: child {child} has no result for step '{result_step}'", code="no_result")
    detail = await ctx.api.get_json(f"/api/executions/{child}", {"include_events": "false"})
    return detail.get("result") if isinstance(detail, Mapping) else None


async def run(config: dict[str, Any], ctx: ToolContext) -> Any:
    """Start the child; fire-and-forget, wait for its status (return_step) or its result (return_result)."""
    body = _execute_body(config, ctx)
    try:
        started = await ctx.api.post_json("/api/execute", body)
    except Exception as exc:
        status = http_status(exc)
        target = body.get("path") or body.get("catalog_id")
        if status == 404:
            raise ToolError(f"playbook: child playbook not found: {target}", code="not_found") from None
        reason = f"server answered {status}" if status is not None else type(exc).__name__
        raise ToolError(f"playbook: could not start {target}: {reason}", code="api_error") from None
    child = str((started or {}).get("execution_id") or "")
    if not child:
        raise ToolError("playbook: the server returned no execution_id", code="api_error")
    path = body.get("path") or (started or {}).get("path")
    return_result = config.get("return_result") is True or str(config.get("return_result")).lower() == "true"
    if config.get("return_step") in (None, "") and not return_result:
        return {"status": "started", "execution_id": child, "path": path, "async": True}
    timeout = seconds(config.get("timeout")) or (DEFAULT_RESULT_WAIT if return_result else DEFAULT_WAIT)
    poll = seconds(config.get("poll_interval")) or DEFAULT_POLL
    summary = await _wait_terminal(ctx, child, timeout, poll)
    if summary is None:
        timed_out = {"status": "timeout", "execution_id": child, "timeout_seconds": timeout}
        if return_result:
            raise ToolError(
                f"playbook: child {child} did not finish within {timeout:g}s", data=timed_out, code="timeout"
            )
        return timed_out
    if not return_result:
        return summary
    state = str(summary.get("status")).upper()
    if state != "COMPLETED":
        error = summary.get("error") or state.lower()
        raise ToolError(
            f"playbook: child {child} {state}: {error}", data=summary, code=f"child_{state.lower()}"
        )
    result_step = config.get("result_step")
    return await _result_of(ctx, child, result_step if isinstance(result_step, str) and result_step else None)
