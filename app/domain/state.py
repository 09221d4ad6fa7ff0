"""Execution state as the fold of an execution's events in event_id order (dsl §4.1, §4.4)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.domain.results import (
    Output,
    command_id_of,
    event_kind,
    extract_output,
    payload_of,
    wrap_result,
)

__all__ = ["EMITTER", "ExecutionState", "InFlight", "LoopInstance", "StepState", "fold", "fold_into"]

EMITTER = "control_plane"
RUNNING = "entered"
DONE_STATES = frozenset({"completed", "failed", "skipped"})


@dataclass
class LoopInstance:
    """One dispatch of a loop step (a re-entry starts a new instance/epoch)."""

    epoch: int
    collection: list[Any]
    expected: int
    mode: str = "sequential"
    max_in_flight: int | None = None
    dispatched: int = 0
    results: dict[int, Any] = field(default_factory=dict)
    done: list[int] = field(default_factory=list)
    failed: int = 0
    last_seq: int = 0
    errors: list[Any] = field(default_factory=list)


@dataclass
class StepState:
    """Per-step state."""

    status: str = "pending"
    generation: int = 0
    result: Any = None
    has_result: bool = False
    error: Any = None
    completed_seq: int | None = None
    outcome: dict[str, Any] | None = None
    loop: LoopInstance | None = None

    @property
    def running(self) -> bool:
        return self.status == RUNNING

    @property
    def done(self) -> bool:
        return self.status in DONE_STATES


@dataclass
class InFlight:
    """A command issued and not yet finished."""

    step: str
    index: int | None = None
    epoch: int | None = None
    parked: bool = False
    event_id: int = 0


@dataclass
class ExecutionState:
    """Everything orchestration needs, JSON-serialisable via to_dict()/from_dict()."""

    execution_id: str = ""
    catalog_id: str = ""
    path: str = ""
    version: Any = None
    parent_execution_id: str | None = None
    execution_pool: str | None = None
    trace: Any = None
    workload: dict[str, Any] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, StepState] = field(default_factory=dict)
    in_flight: dict[int, InFlight] = field(default_factory=dict)
    issued_by_event: dict[int, int] = field(default_factory=dict)
    call_results: dict[int, dict[str, Any]] = field(default_factory=dict)
    seen_commands: set[int] = field(default_factory=set)
    awaiting: list[str] = field(default_factory=list)
    terminal: str | None = None
    final_step: str | None = None
    started: bool = False
    last_event_id: int = 0

    def step(self, name: str) -> StepState:
        """The state of `name`, created pending on first use."""
        st = self.steps.get(name)
        if st is None:
            st = self.steps[name] = StepState()
        return st

    def clone(self) -> ExecutionState:
        """Copy every mutable container; result values are treated as immutable and shared."""
        steps = {}
        for k, s in self.steps.items():
            loop = s.loop
            if loop is not None:
                loop = LoopInstance(
                    loop.epoch,
                    loop.collection,
                    loop.expected,
                    loop.mode,
                    loop.max_in_flight,
                    loop.dispatched,
                    dict(loop.results),
                    list(loop.done),
                    loop.failed,
                    loop.last_seq,
                    list(loop.errors),
                )
            steps[k] = StepState(
                s.status, s.generation, s.result, s.has_result, s.error, s.completed_seq, s.outcome, loop
            )
        return ExecutionState(
            self.execution_id,
            self.catalog_id,
            self.path,
            self.version,
            self.parent_execution_id,
            self.execution_pool,
            self.trace,
            self.workload,
            dict(self.vars),
            steps,
            {k: InFlight(v.step, v.index, v.epoch, v.parked, v.event_id) for k, v in self.in_flight.items()},
            dict(self.issued_by_event),
            dict(self.call_results),
            set(self.seen_commands),
            list(self.awaiting),
            self.terminal,
            self.final_step,
            self.started,
            self.last_event_id,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable snapshot (int map keys become strings)."""
        return {
            "execution_id": self.execution_id,
            "catalog_id": self.catalog_id,
            "path": self.path,
            "version": self.version,
            "parent_execution_id": self.parent_execution_id,
            "execution_pool": self.execution_pool,
            "trace": self.trace,
            "workload": self.workload,
            "vars": self.vars,
            "steps": {k: _step_dict(v) for k, v in sorted(self.steps.items())},
            "in_flight": {str(k): vars(v).copy() for k, v in sorted(self.in_flight.items())},
            "issued_by_event": {str(k): v for k, v in sorted(self.issued_by_event.items())},
            "call_results": {str(k): v for k, v in sorted(self.call_results.items())},
            "seen_commands": sorted(self.seen_commands),
            "awaiting": list(self.awaiting),
            "terminal": self.terminal,
            "final_step": self.final_step,
            "started": self.started,
            "last_event_id": self.last_event_id,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ExecutionState:
        """Inverse of to_dict()."""
        steps = {}
        for k, v in d.get("steps", {}).items():
            loop = None
            if v.get("loop"):
                lp = dict(v["loop"])
                lp["results"] = {int(i): r for i, r in lp.get("results", {}).items()}
                loop = LoopInstance(**lp)
            sv = {**v, "loop": loop}
            if sv.get("has_result"):
                sv["result"] = wrap_result(sv["result"])
            steps[k] = StepState(**sv)
        return cls(
            execution_id=d.get("execution_id", ""),
            catalog_id=d.get("catalog_id", ""),
            path=d.get("path", ""),
            version=d.get("version"),
            parent_execution_id=d.get("parent_execution_id"),
            execution_pool=d.get("execution_pool"),
            trace=d.get("trace"),
            workload=dict(d.get("workload", {})),
            vars=dict(d.get("vars", {})),
            steps=steps,
            in_flight={int(k): InFlight(**v) for k, v in d.get("in_flight", {}).items()},
            issued_by_event={int(k): v for k, v in d.get("issued_by_event", {}).items()},
            call_results={int(k): v for k, v in d.get("call_results", {}).items()},
            seen_commands=set(d.get("seen_commands", [])),
            awaiting=list(d.get("awaiting", [])),
            terminal=d.get("terminal"),
            final_step=d.get("final_step"),
            started=bool(d.get("started")),
            last_event_id=int(d.get("last_event_id", 0)),
        )


def _step_dict(s: StepState) -> dict[str, Any]:
    out = {
        k: getattr(s, k)
        for k in ("status", "generation", "result", "has_result", "error", "completed_seq", "outcome")
    }
    if s.loop is not None:
        lp = vars(s.loop).copy()
        lp["results"] = {str(i): r for i, r in sorted(s.loop.results.items())}
        out["loop"] = lp
    else:
        out["loop"] = None
    return out


def _ours(event: Mapping[str, Any]) -> bool:
    meta = event.get("meta")
    return isinstance(meta, Mapping) and meta.get("emitter") == EMITTER


def set_path(target: dict[str, Any], key: str, value: Any) -> None:
    """Write `a.b.c` as nested mappings (copying the mappings on the way to keep sharing safe)."""
    parts = key.split(".")
    node = target
    for p in parts[:-1]:
        child = node.get(p)
        child = dict(child) if isinstance(child, Mapping) else {}
        node[p] = child
        node = child
    node[parts[-1]] = value


def strip_scope(key: str) -> str | None:
    """`ctx.x`/`step.x`/bare → `x`; `iter.x` → None (not execution-scoped)."""
    for prefix in ("ctx.", "step.", "vars."):
        if key.startswith(prefix):
            return key[len(prefix) :]
    if key.startswith("iter."):
        return None
    return key


def apply_vars(state: ExecutionState, values: Mapping[str, Any]) -> None:
    """Apply scope-stripped writes to the execution variables."""
    for k, v in values.items():
        name = strip_scope(str(k))
        if name:
            if "." in name:
                set_path(state.vars, name, v)
            else:
                state.vars[name] = v


def fold(state: ExecutionState, event: Mapping[str, Any]) -> ExecutionState:
    """Return a new state with `event` folded in (the input state is not modified)."""
    st = state.clone()
    fold_into(st, event)
    return st


def fold_into(st: ExecutionState, event: Mapping[str, Any]) -> None:
    """Fold one event row into `st` in place."""
    eid = int(event.get("event_id") or 0)
    st.last_event_id = max(st.last_event_id, eid)
    etype = event_kind(str(event.get("event_type") or ""))
    if etype == "start":
        _fold_start(st, event)
        return
    if etype in ("completed", "failed", "cancelled"):
        if st.terminal is None:
            st.terminal = etype.upper()
            st.final_step = (payload_of(event).get("final_step")) or st.final_step
        return
    if st.terminal is not None:
        return
    handler = _HANDLERS.get(etype)
    if handler is not None:
        handler(st, event, eid)


def _fold_start(st: ExecutionState, event: Mapping[str, Any]) -> None:
    ctx = payload_of(event) or dict(event.get("context") or {})
    meta = event.get("meta") or {}
    st.execution_id = str(ctx.get("execution_id") or event.get("execution_id") or st.execution_id)
    st.catalog_id = str(ctx.get("catalog_id") or event.get("catalog_id") or st.catalog_id)
    st.path = str(ctx.get("path") or event.get("node_name") or st.path)
    st.version = ctx.get("version", st.version)
    pe = event.get("parent_execution_id")
    st.parent_execution_id = str(pe) if pe is not None else None
    st.execution_pool = meta.get("execution_pool")
    st.trace = meta.get("trace")
    st.workload = dict(ctx.get("workload") or {})
    st.started = True


def _fold_step_enter(st: ExecutionState, event: Mapping[str, Any], eid: int) -> None:
    if not _ours(event):
        return  # worker-written step.enter only marks activity the server already knows
    name = str(event.get("node_name"))
    s = st.step(name)
    s.status = RUNNING
    s.generation += 1
    s.outcome = None
    s.loop = None
    ctx = payload_of(event)
    if "iterations_expected" in ctx:
        coll = list(ctx.get("collection") or [])
        s.loop = LoopInstance(
            epoch=eid,
            collection=coll,
            expected=int(ctx["iterations_expected"]),
            mode=str(ctx.get("mode") or "sequential"),
            max_in_flight=ctx.get("max_in_flight"),
        )
    if name in st.awaiting:
        st.awaiting.remove(name)


def _add_awaiting(st: ExecutionState, event: Mapping[str, Any]) -> None:
    for t in (event.get("meta") or {}).get("matched") or []:
        if t not in st.awaiting:
            st.awaiting.append(t)


def _fold_step_skipped(st: ExecutionState, event: Mapping[str, Any], eid: int) -> None:
    if not _ours(event):
        return
    s = st.step(str(event.get("node_name")))
    if not s.running:
        s.status = "skipped"
    name = str(event.get("node_name"))
    if name in st.awaiting:
        st.awaiting.remove(name)
    _add_awaiting(st, event)


def _fold_step_exit(st: ExecutionState, event: Mapping[str, Any], eid: int) -> None:
    if not _ours(event):
        return  # the NoETL Python worker sends its own step.exit; the command completion is authoritative
    s = st.step(str(event.get("node_name")))
    ctx = payload_of(event)
    ok = str(event.get("status") or "").upper() == "COMPLETED"
    s.status = "completed" if ok else "failed"
    s.completed_seq = eid
    s.outcome = None
    s.error = None if ok else ctx.get("error")
    if ok:
        s.result = wrap_result(ctx.get("result"))
        s.has_result = True
    else:
        s.result = None
        s.has_result = False
    _add_awaiting(st, event)


def _fold_ctx_updated(st: ExecutionState, event: Mapping[str, Any], eid: int) -> None:
    values = payload_of(event).get("values")
    if isinstance(values, Mapping):
        apply_vars(st, values)


def _fold_issued(st: ExecutionState, event: Mapping[str, Any], eid: int) -> None:
    cid = command_id_of(event)
    if cid is None:
        return
    meta = event.get("meta") or {}
    name = str(event.get("node_name"))
    idx = meta.get("iteration_index")
    epoch = meta.get("loop_event_id")
    st.in_flight[cid] = InFlight(step=name, index=idx, epoch=epoch, event_id=eid)
    st.issued_by_event[eid] = cid
    s = st.step(name)
    if idx is not None and s.loop is not None and s.loop.epoch == epoch:
        s.loop.dispatched = max(s.loop.dispatched, int(idx) + 1)


def _fold_call(st: ExecutionState, event: Mapping[str, Any], eid: int) -> None:
    cid = command_id_of(event, st.issued_by_event)
    if cid is None or cid not in st.in_flight:
        return
    out = extract_output(event, pipeline=True)
    entry = st.call_results.setdefault(cid, {})
    if str(event.get("event_type")) == "call.error":
        out.is_error = True
        entry["error"] = out.error or "call.error"
    if out.has_data:
        entry["data"] = out.data
        if not out.is_error:
            entry.pop("error", None)
    if out.ctx_updates:
        entry["ctx"] = out.ctx_updates
    if out.is_error:
        entry["error"] = out.error or entry.get("error") or "call failed"
    if st.in_flight[cid].parked:
        _finish_command(st, cid, eid, out)


def _fold_completed(st: ExecutionState, event: Mapping[str, Any], eid: int) -> None:
    cid = command_id_of(event, st.issued_by_event)
    if cid is None or cid in st.seen_commands or cid not in st.in_flight:
        return
    if payload_of(event).get("pending_callback"):
        st.in_flight[cid].parked = True
        return
    out = extract_output(event, pipeline=True)
    if str(event.get("event_type")) == "command.failed":
        out.is_error = True
        out.error = out.error or "command failed"
    _finish_command(st, cid, eid, out)


def _finish_command(st: ExecutionState, cid: int, eid: int, out: Output) -> None:
    flight = st.in_flight.pop(cid)
    st.seen_commands.add(cid)
    prior = st.call_results.pop(cid, {})
    data = out.data if out.has_data else prior.get("data")
    updates = {**prior.get("ctx", {}), **out.ctx_updates}
    failed = out.is_error  # the completion's own status is authoritative (retried calls may have erred)
    error = out.error or prior.get("error")
    if updates:
        apply_vars(st, updates)
    s = st.step(flight.step)
    if flight.index is not None:
        loop = s.loop
        if loop is None or loop.epoch != flight.epoch or flight.index in loop.done:
            return  # a straggler from an earlier loop instance
        loop.done.append(int(flight.index))
        loop.last_seq = eid
        if failed:
            loop.failed += 1
            loop.errors.append(error)
        else:
            loop.results[int(flight.index)] = data
        return
    s.outcome = {"ok": not failed, "data": data, "error": error if failed else None, "seq": eid}


_HANDLERS = {
    "step.enter": _fold_step_enter,
    "step.skipped": _fold_step_skipped,
    "step.exit": _fold_step_exit,
    "ctx.updated": _fold_ctx_updated,
    "command.issued": _fold_issued,
    "call.done": _fold_call,
    "call.error": _fold_call,
    "command.completed": _fold_completed,
    "command.failed": _fold_completed,
}
