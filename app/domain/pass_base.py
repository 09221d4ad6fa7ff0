"""Shared plumbing of an orchestration pass: emit-and-fold, render context, running checks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from app.domain.context import base_context
from app.domain.events import NewCommand, NewEvent
from app.domain.fold import fold_into
from app.domain.playbook import Playbook
from app.domain.state import EMITTER, ExecutionState

__all__ = ["PassBase"]


class PassBase:
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

    def dispatch(self, name: str) -> None:
        """Dispatch a step (implemented by the engine pass)."""
        raise NotImplementedError
