"""Pure orchestration engine: start() and decide() turn events into new events and commands (dsl §4)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.domain.context import base_context, build_command_parts, iteration_vars
from app.domain.playbook import Playbook, Step
from app.domain.results import command_id_of, event_kind, payload_of, wrap_result
from app.domain.state import EMITTER, ExecutionState, fold_into, strip_scope
from app.domain.templating import TemplateError, is_truthy, render_value

__all__ = ["Decision", "EngineError", "NewCommand", "NewEvent", "decide", "start"]

TRIGGERS = frozenset({"command.completed", "command.failed"})


class EngineError(Exception):
    """An orchestration-time error that fails the execution (e.g. a bad loop collection)."""


@dataclass
class NewEvent:
    """An event to append to noetl.event (fields mirror the row)."""

    event_id: int
    event_type: str
    node_name: str
    status: str
    node_type: str | None = None
    result: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    parent_event_id: int | None = None
    command_id: int | None = None
    parent_execution_id: str | None = None
    created_at: str | None = None

    def to_row(self) -> dict[str, Any]:
        """The event as a row mapping (what fold() consumes)."""
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "node_id": self.node_name,
            "node_name": self.node_name,
            "node_type": self.node_type,
            "status": self.status,
            "result": self.result,
            "context": self.context,
            "meta": self.meta,
            "error": self.error,
            "parent_event_id": self.parent_event_id,
            "command_id": self.command_id,
            "parent_execution_id": self.parent_execution_id,
            "created_at": self.created_at,
        }


@dataclass
class NewCommand:
    """A command to insert into noetl.command and publish; `event_id` is its claim key."""

    command_id: int
    event_id: int
    step: str
    tool_kind: str
    context: dict[str, Any]
    meta: dict[str, Any]


@dataclass
class Decision:
    """Result of one pass: the new state, events in write order, commands, terminal status."""

    state: ExecutionState
    events: list[NewEvent] = field(default_factory=list)
    commands: list[NewCommand] = field(default_factory=list)
    terminal: str | None = None


def _jsonable(value: Any) -> Any:
    # keep persisted payloads strictly JSON (tuples, sets, odd objects from templates)
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return str(value)


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


class _Pass:
    """One orchestration pass; every state change goes through an emitted, folded event."""

    def __init__(
        self,
        pb: Playbook,
        state: ExecutionState,
        server_url: str,
        next_id: Callable[[], int],
        now: datetime,
        trigger_id: int | None,
    ) -> None:
        self.pb = pb
        self.state = state
        self.server_url = server_url
        self.next_id = next_id
        self.now = now.isoformat()
        self.trigger_id = trigger_id
        self.events: list[NewEvent] = []
        self.commands: list[NewCommand] = []
        self.dispatched: list[str] = []
        self.finished: list[str] = []
        self._ctx: dict[str, Any] | None = None

    # -- plumbing -------------------------------------------------------------------------------
    def emit(
        self,
        event_type: str,
        node: str,
        status: str,
        *,
        context: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        node_type: str | None = None,
        error: str | None = None,
        command_id: int | None = None,
        event_id: int | None = None,
    ) -> NewEvent:
        ev = NewEvent(
            event_id=event_id if event_id is not None else self.next_id(),
            event_type=event_type,
            node_name=node,
            status=status,
            node_type=node_type,
            result={"status": status, **({"context": context} if context is not None else {})},
            meta={"emitter": EMITTER, "emitted_at": self.now, **(meta or {})},
            error=error,
            parent_event_id=self.trigger_id,
            command_id=command_id,
            parent_execution_id=self.state.parent_execution_id,
            created_at=self.now,
        )
        self.events.append(ev)
        fold_into(self.state, ev.to_row())
        self._ctx = None
        return ev

    def ctx(self) -> dict[str, Any]:
        if self._ctx is None:
            self._ctx = base_context(self.state, self.server_url)
        return self._ctx

    def running(self, name: str) -> bool:
        st = self.state.steps.get(name)
        return st is not None and st.running

    # -- dispatch -------------------------------------------------------------------------------
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
                "collection": _jsonable(items),
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
        context = _jsonable(parts)
        self.emit(
            "command.issued",
            step.name,
            "PENDING",
            context=context,
            meta=meta,
            node_type=step.tool_kind,
            command_id=command_id,
            event_id=event_id,
        )
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
    def render_set(self, values: Mapping[str, Any], ctx: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in values.items():
            key = str(render_value(k, ctx)) if isinstance(k, str) and "{{" in k else str(k)
            if strip_scope(key) is None:
                continue  # iter.* writes never reach the execution
            out[key] = render_value(v, ctx)
        rendered: dict[str, Any] = _jsonable(out)
        return rendered

    def complete(self, step: Step, ok: bool, data: Any, error: Any, event_name: str) -> None:
        """§4.5 for one finished step: set, arcs, arc set, skips; targets go to `awaiting`."""
        name = step.name
        if ok and step.wrapped_single and isinstance(data, Mapping):
            label = f"{name}_task"
            inner = data.get(
                label,
                (data.get("results") or {}).get(label) if isinstance(data.get("results"), Mapping) else None,
            )
            if inner is not None:
                data = inner
        result = wrap_result(_jsonable(data)) if ok else None
        base = self.ctx()
        rctx: dict[str, Any] = {
            **base,
            "event": {
                "name": event_name if ok else "call.error",
                "step": name,
                "payload": result,
                "timestamp": self.now,
            },
        }
        if ok:
            rctx[name] = result
            rctx["output"] = result
        else:
            rctx["error"] = error
        set_values = self.render_set(step.set, rctx) if ok and step.set else {}
        if set_values:
            scratch = {k: v for k, v in self.state.vars.items()}
            for k, v in set_values.items():
                n = strip_scope(k)
                if n:
                    scratch[n] = v
            ctx_map = {**rctx["ctx"], **scratch}
            rctx = {**rctx, **scratch, "ctx": ctx_map}
        candidates = step.next.arcs if ok else tuple(a for a in step.next.arcs if a.has_when)
        matched = []
        for arc in candidates:
            if not arc.has_when or is_truthy(arc.when, rctx):
                matched.append(arc)
                if step.next.mode != "inclusive":
                    break
        arc_sets = [(a, self.render_set(a.set, rctx)) for a in matched if a.set]
        # S itself is still 'running' until its step.exit is folded, so a self-arc must not be deduped
        targets = [
            a.step
            for a in matched
            if a.step in self.pb.by_name and (a.step == name or not self.running(a.step))
        ]
        targets = list(dict.fromkeys(targets))
        status = "COMPLETED" if ok else "FAILED"
        err_text = None if ok else (error if isinstance(error, str) else json.dumps(error, default=str))
        exit_ev = self.emit(
            "step.exit",
            name,
            status,
            meta={"matched": targets, "event_name": event_name},
            context={"status": status, "result": result, "error": err_text},
            node_type=step.tool_kind,
            error=err_text,
        )
        if set_values:
            self.emit(
                "ctx.updated",
                name,
                "CONTEXT",
                context={"step": name, "gen": exit_ev.event_id, "values": set_values},
            )
        for arc, values in arc_sets:
            if values:
                self.emit(
                    "ctx.updated",
                    name,
                    "CONTEXT",
                    context={"step": name, "gen": exit_ev.event_id, "arc": arc.step, "values": values},
                )
        matched_ids = {id(a) for a in matched}
        if not self.pb.graph.is_loop_branch_point(name):
            for arc in step.next.arcs:
                t = arc.step
                if id(arc) in matched_ids or t not in self.pb.by_name or t in self.state.awaiting:
                    continue
                tst = self.state.steps.get(t)
                if tst is not None and (tst.done or tst.running):
                    continue
                self.emit("step.skipped", t, "SKIPPED", context={"reason": "unmatched", "source": name})
        self.finished.append(name)

    def barrier_ok(self, target: str) -> bool:
        """Fan-in barrier with liveness (dsl §4.6)."""
        incoming = self.pb.graph.incoming.get(target, ())
        if len(incoming) <= 1:
            return True
        sources = [n for n, s in self.state.steps.items() if s.running]
        sources += self.dispatched
        sources += [t for t in self.state.awaiting if t != target]
        live = self.pb.graph.reachable_from(sources)
        for up in incoming:
            st = self.state.steps.get(up)
            if st is not None and st.done:
                continue
            if up in live:
                return False
        return True

    def fire_fan_ins(self) -> None:
        """Dispatch awaited targets whose barrier is satisfied (dsl §4.5 step 6)."""
        while self.state.awaiting:
            ready = [t for t in self.state.awaiting if not self.running(t) and self.barrier_ok(t)]
            if not ready:
                if any(s.running for s in self.state.steps.values()):
                    return
                ready = [self.state.awaiting[0]]  # mutual waits with nothing running: break the tie
            self.dispatch(ready[0])

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

    def finish_if_quiescent(self) -> str | None:
        st = self.state
        if self.commands or st.in_flight or any(s.running for s in st.steps.values()) or st.awaiting:
            return None
        failed = [n for n, s in st.steps.items() if s.status == "failed"]
        final = self.finished[-1] if self.finished else st.final_step
        if failed:
            err = "Failed steps: " + ", ".join(failed)
            self.emit(
                "playbook.failed",
                "playbook",
                "FAILED",
                error=err,
                meta={"failed_steps": failed},
                context={"status": "FAILED", "final_step": final, "error": err, "failed_steps": failed},
            )
            return "FAILED"
        fst = st.steps.get(final) if final else None
        self.emit(
            "playbook.completed",
            "playbook",
            "COMPLETED",
            context={
                "status": "COMPLETED",
                "final_step": final,
                "result": fst.result if fst and fst.has_result else None,
            },
        )
        return "COMPLETED"

    def fail_execution(self, message: str) -> str:
        err = f"Orchestrator evaluate failed: {message}"
        self.emit(
            "playbook.failed",
            "playbook",
            "FAILED",
            error=err,
            meta={"failed_steps": []},
            context={
                "status": "FAILED",
                "final_step": self.finished[-1] if self.finished else None,
                "error": err,
                "failed_steps": [],
            },
        )
        return "FAILED"


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
        "workload": _jsonable(workload),
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
