"""Status union derivation (server-contract §4.3, §13.6)."""

from app.domain.status import derive_status, duration_human
from tests.unit.domain.helpers import Sim, make_playbook


def _rows(sim, t0="2026-01-01T00:00:00"):
    rows = []
    for i, r in enumerate(sim.rows):
        rows.append({**r, "created_at": f"2026-01-01T00:00:{i:02d}" if i < 60 else t0})
    return rows


def test_duration_human():
    assert duration_human(0.2) == "0s"
    assert duration_human(3723.4) == "1h 2m 3s"
    assert duration_human(61) == "1m 1s"


def test_completed_run_status():
    sim = Sim(
        make_playbook("- step: start\n  tool: {kind: noop}\n  next: [b]\n- step: b\n  tool: {kind: noop}\n")
    )
    sim.run()
    s = derive_status(4242, _rows(sim), commands_active=False)
    assert s["status"] == "COMPLETED" and s["completed"] and not s["failed"] and not s["completion_inferred"]
    assert s["completed_steps"] == ["start", "b"]
    assert s["progress"] == {"total_steps": 2, "completed_steps": 2, "running_steps": 0, "failed_steps": 0}
    assert s["execution_id"] == "4242" and s["duration_seconds"] > 0 and s["end_time"]


def test_failed_and_running_and_inferred():
    sim = Sim(
        make_playbook("- step: start\n  tool: {kind: noop}\n  next: [b]\n- step: b\n  tool: {kind: noop}\n")
    )
    rows = _rows(sim)
    s = derive_status(1, rows, commands_active=True)
    assert s["status"] == "RUNNING" and s["current_step"] == "start" and s["end_time"] is None
    s = derive_status(1, rows, commands_active=False)
    assert s["status"] == "COMPLETED" and s["completion_inferred"]
    sim.fail(sim.take(), "relation missing")
    s = derive_status(1, _rows(sim), commands_active=False)
    assert s["status"] == "FAILED" and s["failed"] and s["error"] == "start: relation missing"
    assert s["progress"]["failed_steps"] == 1


def test_cancelled_and_task_sequence_excluded():
    rows = [
        {"event_id": 1, "event_type": "playbook_started", "node_name": "p", "status": "STARTED"},
        {"event_id": 2, "event_type": "step.enter", "node_name": "s", "status": "ENTERED"},
        {
            "event_id": 3,
            "event_type": "command.completed",
            "node_name": "s:task_sequence",
            "status": "COMPLETED",
        },
        {"event_id": 4, "event_type": "execution.cancelled", "node_name": "cancel", "status": "CANCELLED"},
    ]
    s = derive_status(1, rows, commands_active=True)
    assert s["status"] == "CANCELLED" and s["completed"] and s["is_cancelled"]
    assert s["completed_steps"] == []
