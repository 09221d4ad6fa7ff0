"""Render contexts (dsl §3.3) and command construction (dsl §5.3, server-contract §5.3)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.domain.playbook import TASK_SEQUENCE, Playbook, Step
from app.domain.state import ExecutionState
from app.domain.templating import render_value

__all__ = ["base_context", "build_command_parts", "iteration_vars", "step_results"]


def step_results(state: ExecutionState) -> dict[str, Any]:
    """Results of every step that has one (re-entered steps keep their last result until replaced)."""
    return {name: s.result for name, s in state.steps.items() if s.has_result}


def base_context(state: ExecutionState, server_url: str) -> dict[str, Any]:
    """The execution-level render context; precedence workload < step results < ctx writes < ids."""
    results = step_results(state)
    ctx_map = {**state.workload, **results, **state.vars}
    out = dict(ctx_map)
    eid = state.execution_id
    out.update(
        workload=state.workload,
        ctx=ctx_map,
        execution_id=eid,
        catalog_id=state.catalog_id,
        path=state.path,
        version=state.version,
        job={"uuid": eid, "execution_id": eid, "id": eid},
        server_url=server_url,
    )
    return out


def iteration_vars(iterator: str, item: Any, index: int, total: int, loop_event_id: int) -> dict[str, Any]:
    """Loop iteration variables (dsl §3.3)."""
    it = {
        iterator: item,
        "_index": index,
        "_total": total,
        "_first": index == 0,
        "_last": index == total - 1,
        "loop_event_id": loop_event_id,
    }
    return {
        "iter": it,
        iterator: item,
        "_index": index,
        "_total": total,
        "loop_index": index,
        "loop": {"index": index, "first": index == 0, "length": total, "done": False},
    }


def _render_context(
    pb: Playbook,
    step: Step,
    state: ExecutionState,
    ctx: Mapping[str, Any],
    server_url: str,
    loop_vars: Mapping[str, Any],
) -> dict[str, Any]:
    """What the worker needs for late rendering; prior results only for names the step references."""
    wanted = step.referenced_names
    results = {n: s.result for n, s in state.steps.items() if s.has_result and n in wanted}
    out: dict[str, Any] = {**state.workload, **results, **state.vars}
    out.update(
        workload=state.workload,
        ctx=dict(state.vars),
        execution_id=state.execution_id,
        catalog_id=state.catalog_id,
        path=state.path,
        version=state.version,
        job=ctx["job"],
        server_url=server_url,
        step=step.name,
    )
    out.update(loop_vars)
    return out


def build_command_parts(
    pb: Playbook,
    step: Step,
    state: ExecutionState,
    ctx: Mapping[str, Any],
    server_url: str,
    loop_vars: Mapping[str, Any],
) -> dict[str, Any]:
    """Command context `{tool_config, args, input, render_context, spec}`; may raise TemplateError."""
    step_input = render_value(dict(step.input), ctx) if step.input else {}
    if not isinstance(step_input, dict):
        step_input = {}
    extra_input: dict[str, Any] = {}
    if loop_vars:
        it = loop_vars["iter"]
        iterator = next(iter(it))
        extra_input = {iterator: it[iterator], "_index": it["_index"], "_total": it["_total"]}
    if step.tool_kind == TASK_SEQUENCE:
        # pipeline task fields are rendered by the worker against the running pipeline context (dsl §3.7)
        tool_config: dict[str, Any] = {"tasks": [dict(t) for t in step.pipeline or ()]}
        effective = {**step_input, **extra_input}
        spec = dict(step.spec)
    else:
        raw = {k: v for k, v in (step.tool or {}).items() if k != "kind"}
        tool_config = render_value(raw, ctx)
        tool_input = tool_config.get("input")
        tool_input = tool_input if isinstance(tool_input, dict) else {}
        effective = {**step_input, **tool_input, **extra_input}
        tool_config["input"] = effective
        raw_spec = raw.get("spec")
        tool_spec: dict[str, Any] = dict(raw_spec) if isinstance(raw_spec, Mapping) else {}
        spec = {**tool_spec, **step.spec}
    return {
        "tool_config": tool_config,
        "args": effective,
        "input": effective,
        "render_context": _render_context(pb, step, state, ctx, server_url, loop_vars),
        "spec": spec,
    }
