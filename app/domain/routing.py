"""Completion handling and routing (dsl §4.5, §4.6, §4.9): set, arcs, skips, fan-in, quiescence."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from app.domain.events import jsonable
from app.domain.pass_base import PassBase
from app.domain.playbook import Step
from app.domain.results import wrap_result
from app.domain.state import set_path, strip_scope
from app.domain.templating import is_truthy, render_value

__all__ = ["Router"]


class Router(PassBase):
    """Routing half of a pass."""

    def render_set(self, values: Mapping[str, Any], ctx: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in values.items():
            key = str(render_value(k, ctx)) if isinstance(k, str) and "{{" in k else str(k)
            if strip_scope(key) is None:
                continue  # iter.* writes never reach the execution
            out[key] = render_value(v, ctx)
        rendered: dict[str, Any] = jsonable(out)
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
        result = wrap_result(jsonable(data)) if ok else None
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
            # arcs must see the step's own writes before they are persisted (dsl §4.5 step 2 before 3)
            scratch = dict(self.state.vars)
            for k, v in set_values.items():
                n = strip_scope(k)
                if n:
                    set_path(scratch, n, v)
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
