"""Test factories: build playbooks and drive the engine like a worker would."""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from app.domain.engine import Decision, NewCommand, decide, start
from app.domain.fold import fold
from app.domain.playbook import Playbook, parse_playbook
from app.domain.state import ExecutionState

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SERVER = "http://cp:8082"


def make_playbook(body: str, workload: str = "{}") -> Playbook:
    """A playbook from a workflow YAML fragment (or a whole document when it has apiVersion)."""
    text = textwrap.dedent(body)
    if "apiVersion" not in text:
        text = (
            "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: t, path: tests/t}\n"
            f"workload: {workload}\nworkflow:\n" + textwrap.indent(text, "  ")
        )
    pb, _ = parse_playbook(text)
    return pb


class Sim:
    """Holds the event log and state; completes commands exactly as workers report them."""

    def __init__(
        self, pb: Playbook, workload: dict[str, Any] | None = None, *, id_base: int = 10_000
    ) -> None:
        self.pb = pb
        self._ids = itertools.count(id_base)
        self.decisions: list[Decision] = []
        d = start(
            pb,
            execution_id=4242,
            catalog_id=7,
            path=pb.path,
            version=1,
            workload_override=workload,
            server_url=SERVER,
            next_id=self.next_id,
            now=NOW,
        )
        self.rows: list[dict[str, Any]] = [e.to_row() for e in d.events]
        self.state: ExecutionState = d.state
        self.pending: list[NewCommand] = list(d.commands)
        self.issued: list[NewCommand] = list(d.commands)
        self.decisions.append(d)

    def next_id(self) -> int:
        return next(self._ids)

    def feed(self, row: dict[str, Any]) -> Decision:
        d = decide(self.pb, self.state, row, server_url=SERVER, next_id=self.next_id, now=NOW)
        self.rows.append(row)
        self.rows.extend(e.to_row() for e in d.events)
        self.state = d.state
        self.pending.extend(d.commands)
        self.issued.extend(d.commands)
        self.decisions.append(d)
        return d

    def _row(self, cmd: NewCommand, etype: str, status: str, payload: dict[str, Any], **extra: Any) -> dict:
        meta = {
            "command_id": cmd.command_id,
            "worker_id": "w1",
            "producer_status": extra.pop("producer", None),
        }
        meta.update(extra.pop("meta", {}))
        return {
            "event_id": self.next_id(),
            "event_type": etype,
            "node_name": cmd.step,
            "status": status,
            "result": {"status": status, "context": payload},
            "meta": meta,
            "command_id": extra.pop("command_id", cmd.command_id),
            "error": extra.pop("error", None),
            "parent_event_id": None,
            "created_at": None,
        }

    def take(self, step: str | None = None) -> NewCommand:
        """Remove and return the oldest pending command (of `step` when given)."""
        for i, c in enumerate(self.pending):
            if step is None or c.step == step:
                return self.pending.pop(i)
        raise AssertionError(f"no pending command for {step}: {[c.step for c in self.pending]}")

    def complete(
        self, cmd: NewCommand, data: Any = None, *, worker: str = "project", status: str = "ok"
    ) -> Decision:
        """Report success (or a returned error status) the way `worker` does."""
        if cmd in self.pending:
            self.pending.remove(cmd)
        cid = str(cmd.command_id)
        canon = "FAILED" if status in ("error", "failed") else "COMPLETED"
        if worker == "python":
            self.feed(self._row(cmd, "call.done", "COMPLETED", {"response": data, "command_id": cid}))
            return self.feed(
                self._row(
                    cmd,
                    "command.completed",
                    "COMPLETED",
                    {"command_id": cid, "worker_id": "w1", "result": data},
                )
            )
        key = "data" if worker == "rust" else "context"
        self.feed(
            self._row(
                cmd,
                "call.done",
                "COMPLETED",
                {"command_id": cid, "call_index": 0, "result": {"status": status, key: data}},
            )
        )
        return self.feed(
            self._row(cmd, "command.completed", canon, {"command_id": cid, "status": status}, producer=status)
        )

    def fail(self, cmd: NewCommand, error: str = "boom", *, worker: str = "project") -> Decision:
        """Report a failure with call.error + command.failed."""
        if cmd in self.pending:
            self.pending.remove(cmd)
        cid = str(cmd.command_id)
        self.feed(self._row(cmd, "call.error", "FAILED", {"command_id": cid, "error": error}))
        return self.feed(
            self._row(cmd, "command.failed", "FAILED", {"command_id": cid, "error": error}, error=error)
        )

    def run(self, outputs: dict[str, Any] | None = None, *, max_steps: int = 500) -> str | None:
        """Complete pending commands FIFO; outputs[step] is data or a callable(cmd) -> data."""
        outputs = outputs or {}
        for _ in range(max_steps):
            if not self.pending or self.state.terminal:
                break
            cmd = self.take()
            out: Any = outputs.get(cmd.step, {"status": "ok", "message": "noop"})
            if isinstance(out, Exception):
                self.fail(cmd, str(out))
                continue
            if callable(out):
                out = out(cmd)
            self.complete(cmd, out)
        return self.state.terminal

    def types(self, etype: str, node: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["event_type"] == etype and (node is None or r["node_name"] == node)]

    def refold(self) -> ExecutionState:
        """Fold the whole log from scratch."""
        st = ExecutionState()
        for r in sorted(self.rows, key=lambda r: r["event_id"]):
            st = fold(st, r)
        return st

    def result(self, step: str) -> Any:
        return self.state.steps[step].result


def py(fn: Callable[[dict[str, Any]], Any]) -> Callable[[NewCommand], Any]:
    """Output factory computing a python step's result from the command input."""
    return lambda cmd: fn(cmd.context["input"])
