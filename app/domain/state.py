"""Execution state model (dsl §4.1); see fold.py for how events build it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.domain.results import wrap_result

__all__ = [
    "EMITTER",
    "ExecutionState",
    "InFlight",
    "LoopInstance",
    "StepState",
    "apply_vars",
    "set_path",
    "strip_scope",
]

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
