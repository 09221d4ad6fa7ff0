"""Value types the engine returns: new events, new commands and the decision of one pass."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from app.domain.state import ExecutionState

__all__ = ["Decision", "EngineError", "NewCommand", "NewEvent", "jsonable"]


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


def jsonable(value: Any) -> Any:
    # keep persisted payloads strictly JSON (tuples, sets, odd objects from templates)
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return str(value)
