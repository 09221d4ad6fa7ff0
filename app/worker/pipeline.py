"""The pipeline executor for `task_sequence` commands (playbook-dsl §4.8): tasks, set, policies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from app.domain.results import wrap_result
from app.domain.templating import TemplateError, render_value
from app.worker.policy import Decision, apply_scoped, assign, decide, envelope, retry_delay
from app.worker.tools.base import ToolCancelled, ToolContext, ToolError

MAX_TASK_RUNS = 1_000_000
RESERVED = frozenset({"name", "kind", "set", "spec", "input", "args"})

RunTool = Callable[[str, dict[str, Any], ToolContext], Awaitable[Any]]


def _label_and_task(index: int, raw: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    if "kind" in raw:
        return str(raw.get("name") or f"task_{index}"), dict(raw)
    if len(raw) == 1:
        ((label, body),) = raw.items()
        if isinstance(body, Mapping):
            return str(label), dict(body)
    raise ToolError(f"pipeline task {index} has no `kind`")


def _render(value: Any, ctx: Mapping[str, Any], label: str, what: str) -> Any:
    try:
        return render_value(value, ctx)
    except TemplateError as exc:
        raise ToolError(f"task '{label}': cannot render {what}: {exc}", code="template") from exc


async def run_pipeline(
    tasks: list[Mapping[str, Any]],
    render_context: Mapping[str, Any],
    step_input: Mapping[str, Any],
    ctx: ToolContext,
    run_tool: RunTool,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> dict[str, Any]:
    """Run the tasks in order; the pipeline result (§3.4) or ToolError naming the failing task."""
    parsed = [_label_and_task(i, t) for i, t in enumerate(tasks)]
    labels = {label: i for i, (label, _) in enumerate(parsed)}
    running: dict[str, Any] = {**render_context, **step_input}
    running["ctx"] = (
        dict(render_context.get("ctx") or {}) if isinstance(render_context.get("ctx"), Mapping) else {}
    )
    running.setdefault("iter", {})
    results: dict[str, Any] = {}
    merged: dict[str, Any] = {}
    updates: dict[str, Any] = {}
    attempts: dict[str, int] = {}
    pointer, runs = 0, 0
    while pointer < len(parsed):
        runs += 1
        if runs > MAX_TASK_RUNS:
            raise ToolError("pipeline stopped: more than 1,000,000 task executions (endless jump?)")
        label, task = parsed[pointer]
        kind = str(task.get("kind"))
        attempt = attempts[label] = attempts.get(label, 0) + 1
        local = dict(running)
        raw_input = task.get("input", task.get("args"))
        task_input = _render(raw_input, local, label, "input") if isinstance(raw_input, Mapping) else {}
        if isinstance(task_input, dict):
            local.update(task_input)
        config = {k: v for k, v in task.items() if k not in RESERVED}
        config = _render(config, local, label, "config")
        config["input"] = task_input if isinstance(task_input, dict) else {}
        started = time.monotonic()
        error: ToolError | None = None
        data: Any = None
        try:
            data = await run_tool(kind, config, ctx)
        except ToolCancelled:
            raise
        except ToolError as exc:
            error, data = exc, exc.data
        duration = int((time.monotonic() - started) * 1000)
        if error is None:
            results[label] = data
            if isinstance(data, Mapping):
                merged.update(data)
            running[label] = wrap_result(data)
            for key, value in dict(task.get("set") or {}).items():
                assign(
                    running, str(key), _render(value, {**local, "output": wrap_result(data)}, label, "set")
                )
        out = envelope(kind, data, error, attempt, duration)
        spec = task.get("spec") if isinstance(task.get("spec"), Mapping) else {}
        policy = spec.get("policy") if isinstance(spec, Mapping) else None
        try:
            decision = decide(policy, {**local, **running, "output": out, "_attempt": attempt}, error is None)
        except TemplateError as exc:
            raise ToolError(f"task '{label}': cannot evaluate its policy: {exc}", code="template") from exc
        apply_scoped(running, updates, decision.sets)
        if decision.action != "retry":
            attempts.pop(label, None)
        pointer = await _act(decision, label, pointer, labels, attempt, error, sleep)
        if pointer < 0:
            break
    out_result: dict[str, Any] = {**merged, **results, "results": dict(results)}
    if updates:
        out_result["_context_updates"] = updates
    return out_result


async def _act(
    d: Decision,
    label: str,
    pointer: int,
    labels: Mapping[str, int],
    attempt: int,
    error: ToolError | None,
    sleep: Callable[[float], Awaitable[None]],
) -> int:
    """The next task index (-1 = stop successfully) or ToolError for fail / exhausted retries."""
    if d.action == "continue":  # on an error too: the policy handled it
        return pointer + 1
    if d.action == "break":
        return -1
    if d.action == "retry":
        if attempt < max(1, d.attempts):
            await sleep(retry_delay(d, attempt))
            return pointer
        msg = error.message if error else "retries exhausted"
        raise ToolError(
            f"task '{label}' failed after {attempt} attempt(s): {msg}",
            data=_data(error),
            code="retries_exhausted",
        )
    if d.action == "jump":
        target = d.to or ""
        if target in ("previous", "prev"):
            return max(0, pointer - 1)
        if target not in labels:
            raise ToolError(f"task '{label}': jump target '{target}' is not a task of this pipeline")
        return labels[target]
    msg = error.message if error else "policy chose fail"
    raise ToolError(
        f"task '{label}' failed: {msg}", data=_data(error), code=error.code if error else "policy_fail"
    )


def _data(error: ToolError | None) -> Any:
    return error.data if error is not None else None
