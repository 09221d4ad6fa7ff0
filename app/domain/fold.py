"""Folding event rows into ExecutionState, in event_id order (dsl §4.4, server-contract §13)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from app.domain.results import Output, command_id_of, event_kind, extract_output, payload_of, wrap_result
from app.domain.state import EMITTER, RUNNING, ExecutionState, InFlight, LoopInstance, apply_vars

__all__ = ["fold", "fold_into", "replay"]


def _ours(event: Mapping[str, Any]) -> bool:
    meta = event.get("meta")
    return isinstance(meta, Mapping) and meta.get("emitter") == EMITTER


def fold(state: ExecutionState, event: Mapping[str, Any]) -> ExecutionState:
    """Return a new state with `event` folded in (the input state is not modified)."""
    st = state.clone()
    fold_into(st, event)
    return st


def replay(events: Iterable[Mapping[str, Any]], state: ExecutionState | None = None) -> ExecutionState:
    """Fold stored rows (sorted by event_id) onto a copy of `state` (or an empty state)."""
    st = state.clone() if state is not None else ExecutionState()
    for event in sorted(events, key=lambda e: int(e.get("event_id") or 0)):
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
