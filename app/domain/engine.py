"""Pure orchestration engine: start() and decide() turn events into new events and commands (dsl §4)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from app.domain.context import build_command_parts, iteration_vars
from app.domain.events import Decision, EngineError, NewCommand, NewEvent, jsonable
from app.domain.fold import fold_into
from app.domain.playbook import Playbook, Step
from app.domain.results import command_id_of, event_kind, payload_of
from app.domain.routing import Router
from app.domain.state import ExecutionState
from app.domain.templating import TemplateError, is_truthy, render_value

__all__ = ["Decision", "EngineError", "NewCommand", "NewEvent", "decide", "is_trigger", "start"]

TRIGGERS = frozenset({"command.completed", "command.failed"})


def coerce_collection(value: Any, step: str) -> list[Any]:
    """Loop collection coercion (dsl §2.7)."""
    if value is None or isinstance(value, bool):
        raise EngineError(f"Step '{step}': loop collection is {json.dumps(value)}; expected a list")
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, Mapping):
        return [{"key": k, "value": v} for k, v in value.items()]
    if isinstance(value, int):
        return list(range(value))
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
            if isinstance(parsed, list):
                return parsed
        except ValueError:
            pass
        return [p.strip() for p in value.replace("\n", ",").split(",") if p.strip()]
    raise EngineError(f"Step '{step}': cannot iterate over {type(value).__name__}")


class _Pass(Router):
    """One orchestration pass; every state change goes through an emitted, folded event."""

    def admitted(self, step: Step, ctx: Mapping[str, Any]) -> bool:
        if step.when is not None and not is_truthy(step.when, ctx):
            return False
        for rule in step.admit_rules:
            if "else" in rule:
                then = (rule.get("else") or {}).get("then") or {}
                return bool(then.get("allow", True))
            if "when" in rule and is_truthy(rule["when"], ctx):
                return bool((rule.get("then") or {}).get("allow", True))
        return True

    def dispatch(self, name: str) -> None:
        step = self.pb.step(name)
        ctx = self.ctx()
        if not self.admitted(step, ctx):
            self.skip_and_route(step, ctx)
            return
        self.dispatched.append(name)
        if step.loop is None:
            self.emit("step.enter", name, "ENTERED", context={"step": name}, node_type=step.tool_kind)
            self.issue(step, {}, None)
            return
        loop = step.loop
        if loop.in_expr is None:
            raise EngineError(f"Step '{name}': cursor loops are not supported by this orchestrator")
        items = coerce_collection(render_value(loop.in_expr, ctx), name)
        mif = render_value(loop.max_in_flight, ctx) if loop.max_in_flight is not None else None
        limit = int(mif) if mif not in (None, "") else None
        self.emit(
            "step.enter",
            name,
            "ENTERED",
            node_type=step.tool_kind,
            context={
                "step": name,
                "iterations_expected": len(items),
                "iterator_var": loop.iterator,
                "collection": jsonable(items),
                "mode": loop.mode,
                "max_in_flight": limit,
            },
        )
        self.advance_loop(step)

    def skip_and_route(self, step: Step, ctx: Mapping[str, Any]) -> None:
        """Guard false: step.skipped, then follow the first matching arc (dsl §4.3.1)."""
        ev_ctx = {
            **ctx,
            "event": {"name": "step.skipped", "step": step.name, "payload": {}, "timestamp": self.now},
        }
        arc = next((a for a in step.next.arcs if not a.has_when or is_truthy(a.when, ev_ctx)), None)
        matched = (
            [arc.step]
            if arc is not None and arc.step in self.pb.by_name and not self.running(arc.step)
            else []
        )
        arc_set = self.render_set(arc.set, ev_ctx) if arc is not None else {}
        self.emit(
            "step.skipped", step.name, "SKIPPED", meta={"matched": matched}, context={"reason": "guard"}
        )
        if arc_set:
            self.emit(
                "ctx.updated", step.name, "CONTEXT", context={"step": step.name, "gen": 0, "values": arc_set}
            )

    def issue(self, step: Step, loop_vars: dict[str, Any], index: int | None) -> None:
        ctx = self.ctx()
        if loop_vars:
            ctx = {**ctx, **loop_vars}
        parts = build_command_parts(self.pb, step, self.state, ctx, self.server_url, loop_vars)
        command_id = self.next_id()
        event_id = self.next_id()
        meta: dict[str, Any] = {
            "command_id": command_id,
            "step": step.name,
            "tool_kind": step.tool_kind,
            "max_attempts": 3,
            "attempt": 1,
            "attempts": 1,
            "execution_id": self.state.execution_id,
            "catalog_id": self.state.catalog_id,
            "actionable": True,
        }
        if index is not None and step.loop is not None:
            it = loop_vars["iter"]
            meta.update(
                iteration_index=index,
                iteration_total=it["_total"],
                iterator_step=step.name,
                item_var=step.loop.iterator,
                loop_event_id=it["loop_event_id"],
            )
        if self.state.trace:
            meta["trace"] = self.state.trace
        context = jsonable(parts)
        issued = self.emit(
            "command.issued",
            step.name,
            "PENDING",
            context=context,
            meta=meta,
            node_type=step.tool_kind,
            command_id=command_id,
            event_id=event_id,
        )
        issued.context = context  # the row's context column carries the command context too
        self.commands.append(
            NewCommand(
                command_id=command_id,
                event_id=event_id,
                step=step.name,
                tool_kind=step.tool_kind,
                context=context,
                meta={k: v for k, v in meta.items() if k not in ("emitter", "emitted_at")},
            )
        )

    # -- loops ----------------------------------------------------------------------------------
    def advance_loop(self, step: Step) -> None:
        st = self.state.step(step.name)
        li = st.loop
        if li is None or step.loop is None:
            return
        n = li.expected
        if li.failed == 0:
            limit = 1 if li.mode == "sequential" else (li.max_in_flight or n)
            while li.dispatched < n and li.dispatched - len(li.done) < limit:
                index = li.dispatched
                lv = iteration_vars(step.loop.iterator, li.collection[index], index, n, li.epoch)
                self.issue(step, lv, index)
        if len(li.done) == li.dispatched and (li.dispatched == n or li.failed > 0):
            results = [li.results[i] for i in sorted(li.results)]
            stats = {"total": n, "success": len(li.results), "failed": li.failed}
            data = {"results": results, "stats": stats}
            self.emit("loop.done", step.name, "COMPLETED", context={"iterations": n, **data})
            error = None
            if li.failed:
                error = f"{li.failed} of {n} iterations failed: {li.errors[0] if li.errors else ''}".rstrip(
                    ": "
                )
            self.complete(step, li.failed == 0, data, error, "loop.done")

    # -- completion and routing -----------------------------------------------------------------
    def process(self) -> None:
        """Finish every step that is ready, in completion order, then fan-ins (dsl §4.13)."""
        ready: list[tuple[int, str]] = []
        for name, st in self.state.steps.items():
            if st.outcome is not None:
                ready.append((int(st.outcome["seq"]), name))
            elif st.running and st.loop is not None:
                ready.append((st.loop.last_seq, name))
        for _, name in sorted(ready):
            st = self.state.steps[name]
            step = self.pb.by_name.get(name)
            if step is None:
                continue
            if st.outcome is not None:
                oc = st.outcome
                self.complete(step, bool(oc["ok"]), oc["data"], oc["error"], "call.done")
            elif st.running and st.loop is not None:
                self.advance_loop(step)
        self.fire_fan_ins()


def _run(pb: Playbook, state: ExecutionState, p: _Pass, body: Callable[[_Pass], None]) -> Decision:
    snapshot = state.clone()
    prefix = list(p.events)
    try:
        body(p)
        terminal = p.finish_if_quiescent()
    except (TemplateError, EngineError) as exc:
        msg = exc.message if isinstance(exc, TemplateError) else str(exc)
        p = _Pass(pb, snapshot, p.server_url, p.next_id, datetime.fromisoformat(p.now), p.trigger_id)
        p.events = prefix
        terminal = p.fail_execution(msg)
    return Decision(state=p.state, events=p.events, commands=p.commands, terminal=terminal)


def start(
    pb: Playbook,
    *,
    execution_id: int | str,
    catalog_id: int | str,
    path: str | None = None,
    version: Any = None,
    workload_override: Mapping[str, Any] | None = None,
    parent_execution_id: int | str | None = None,
    execution_pool: str | None = None,
    trace: Mapping[str, Any] | None = None,
    server_url: str,
    next_id: Callable[[], int],
    now: datetime,
) -> Decision:
    """Start an execution: playbook_started, then dispatch the entry step (dsl §4.2)."""
    workload = {**pb.workload, **(workload_override or {})}
    state = ExecutionState()
    p = _Pass(pb, state, server_url, next_id, now, None)
    meta: dict[str, Any] = {}
    if execution_pool:
        meta["execution_pool"] = execution_pool
    if trace:
        meta["trace"] = dict(trace)
    ctx = {
        "catalog_id": str(catalog_id),
        "execution_id": str(execution_id),
        "path": path or pb.path,
        "version": version if version is not None else pb.version,
        "workload": jsonable(workload),
    }
    state.parent_execution_id = str(parent_execution_id) if parent_execution_id is not None else None
    ev = p.emit("playbook_started", path or pb.path, "STARTED", context=ctx, meta=meta, node_type="playbook")
    ev.context = ctx
    p.trigger_id = ev.event_id

    def body(q: _Pass) -> None:
        q.dispatch(pb.entry_step)
        q.process()

    return _run(pb, p.state, p, body)


def is_trigger(state: ExecutionState, event: Mapping[str, Any]) -> bool:
    """Whether `event` (not yet folded) starts an orchestration pass (server-contract §13.7)."""
    etype = str(event.get("event_type") or "")
    if etype not in TRIGGERS and etype != "call.done":
        return False
    cid = command_id_of(event, state.issued_by_event)
    if cid is None or cid in state.seen_commands or cid not in state.in_flight:
        return False
    if etype == "call.done":
        return state.in_flight[cid].parked
    return not (etype == "command.completed" and payload_of(event).get("pending_callback"))


def decide(
    pb: Playbook,
    state: ExecutionState,
    event: Mapping[str, Any],
    *,
    server_url: str,
    next_id: Callable[[], int],
    now: datetime,
) -> Decision:
    """Fold `event`; when it is a trigger on a live execution, run one orchestration pass."""
    st = state.clone()
    trigger = st.terminal is None and is_trigger(st, event)
    fold_into(st, event)
    if not trigger or st.terminal is not None or event_kind(str(event.get("event_type"))) == "cancelled":
        return Decision(state=st)
    p = _Pass(pb, st, server_url, next_id, now, int(event.get("event_id") or 0) or None)
    return _run(pb, st, p, lambda q: q.process())
