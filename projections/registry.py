"""Every read model, by name."""

from __future__ import annotations

from projections.base import Projection
from projections.command_state import CommandState
from projections.execution_summary import ExecutionSummary
from projections.playbook_stats import PlaybookStats

READ_MODELS: dict[str, Projection] = {
    p.name: p for p in (ExecutionSummary(), PlaybookStats(), CommandState())
}
SYNC_PROJECTIONS = ("command", "execution")  # noetl.command and noetl.execution (written synchronously)
