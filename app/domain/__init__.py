"""Playbook language and pure orchestration engine (no I/O).

Public entry points:
    parse_playbook(text) -> (Playbook, warnings)           # raises app.errors.InvalidPlaybook
    start(playbook, ...) -> Decision                        # playbook_started + entry step
    decide(playbook, state, event_row, ...) -> Decision     # fold one event; orchestrate on triggers
    fold(state, event_row) -> ExecutionState                # one stored event onto a copy of state
    replay(event_rows, state=None) -> ExecutionState        # rebuild state from stored events
    derive_status(execution_id, event_rows, commands_active=...) -> dict
"""

from app.domain.engine import decide, is_trigger, start
from app.domain.events import Decision, EngineError, NewCommand, NewEvent
from app.domain.fold import fold, fold_into, replay
from app.domain.playbook import Playbook, Step, parse_playbook
from app.domain.state import ExecutionState
from app.domain.status import derive_status
from app.domain.templating import TemplateError, is_truthy, render_text, render_value

__all__ = [
    "Decision",
    "EngineError",
    "ExecutionState",
    "NewCommand",
    "NewEvent",
    "Playbook",
    "Step",
    "TemplateError",
    "decide",
    "derive_status",
    "fold",
    "fold_into",
    "is_trigger",
    "is_truthy",
    "parse_playbook",
    "render_text",
    "render_value",
    "replay",
    "start",
]
