"""Pipelines and task policies on the worker (dsl §2.8.1, §2.8.4, §4.8)."""

from __future__ import annotations

from typing import Any

import pytest

from app.worker.pipeline import run_pipeline
from app.worker.policy import Decision, retry_delay
from app.worker.tools.base import ToolContext, ToolError
from tests.unit.worker.helpers import make_ctx

pytestmark = pytest.mark.unit


class Script:
    """A fake tool runner: each kind `t` returns/raises the next scripted outcome for its label."""

    def __init__(self, outcomes: dict[str, list[Any]]) -> None:
        self.outcomes = outcomes
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, kind: str, config: dict[str, Any], ctx: ToolContext) -> Any:
        label = config["label"]
        self.calls.append((label, config))
        value = self.outcomes[label].pop(0) if len(self.outcomes[label]) > 1 else self.outcomes[label][0]
        if isinstance(value, Exception):
            raise value
        return value


async def no_sleep(_: float) -> None:
    return None


async def test_tasks_see_earlier_results_set_and_inputs() -> None:
    tasks = [
        {"name": "fetch", "kind": "t", "label": "fetch", "set": {"page": "{{ output.n }}"}},
        {
            "name": "use",
            "kind": "t",
            "label": "use",
            "input": {"p": "{{ page }}"},
            "v": "{{ fetch.n }}-{{ p }}",
        },
    ]
    run = Script({"fetch": [{"n": 2}], "use": [{"ok": True}]})
    out = await run_pipeline(tasks, {"base": 1}, {}, make_ctx(), run, no_sleep)
    assert run.calls[1][1]["v"] == "2-2" and run.calls[1][1]["input"] == {"p": 2}
    assert out == {
        "n": 2,
        "ok": True,
        "fetch": {"n": 2},
        "use": {"ok": True},
        "results": {"fetch": {"n": 2}, "use": {"ok": True}},
    }


async def test_retry_until_success_with_attempt_counter() -> None:
    policy = {"rules": [{"when": "{{ output.status == 'error' }}", "then": {"do": "retry", "attempts": 3}}]}
    tasks = [{"name": "a", "kind": "t", "label": "a", "spec": {"policy": policy}}]
    run = Script({"a": [ToolError("x"), ToolError("y"), {"v": 1}]})
    out = await run_pipeline(tasks, {}, {}, make_ctx(), run, no_sleep)
    assert out["a"] == {"v": 1} and len(run.calls) == 3


async def test_retries_exhausted_fail_with_the_task_error() -> None:
    policy = {"rules": [{"when": "{{ output.status == 'error' }}", "then": {"do": "retry", "attempts": 2}}]}
    tasks = [{"name": "a", "kind": "t", "label": "a", "spec": {"policy": policy}}]
    run = Script({"a": [ToolError("boom")]})
    with pytest.raises(ToolError, match="task 'a' failed after 2 attempt"):
        await run_pipeline(tasks, {}, {}, make_ctx(), run, no_sleep)
    assert len(run.calls) == 2


async def test_default_error_fails_and_continue_handles_it() -> None:
    tasks = [{"name": "a", "kind": "t", "label": "a"}, {"name": "b", "kind": "t", "label": "b"}]
    with pytest.raises(ToolError, match="task 'a' failed: nope"):
        await run_pipeline(tasks, {}, {}, make_ctx(), Script({"a": [ToolError("nope")], "b": [1]}), no_sleep)
    tasks[0]["spec"] = {"policy": {"rules": [{"else": {"then": {"do": "continue"}}}]}}
    out = await run_pipeline(
        tasks, {}, {}, make_ctx(), Script({"a": [ToolError("nope")], "b": [1]}), no_sleep
    )
    assert out["b"] == 1


async def test_break_jump_and_ctx_writes() -> None:
    pol_a = {
        "rules": [
            {"when": "{{ _attempt >= 1 }}", "then": {"do": "continue", "set": {"ctx.total": 5, "iter.p": 1}}}
        ]
    }
    pol_b = {"rules": [{"when": "{{ ctx.total == 5 and iter.p == 1 }}", "then": {"do": "break"}}]}
    tasks = [
        {"name": "a", "kind": "t", "label": "a", "spec": {"policy": pol_a}},
        {"name": "b", "kind": "t", "label": "b", "spec": {"policy": pol_b}},
        {"name": "c", "kind": "t", "label": "c"},
    ]
    out = await run_pipeline(tasks, {}, {}, make_ctx(), Script({"a": [1], "b": [2], "c": [3]}), no_sleep)
    assert "c" not in out and out["_context_updates"] == {"total": 5}
    tasks[1]["spec"] = {"policy": {"rules": [{"when": True, "then": {"do": "jump", "to": "nowhere"}}]}}
    with pytest.raises(ToolError, match="jump target 'nowhere'"):
        await run_pipeline(tasks, {}, {}, make_ctx(), Script({"a": [1], "b": [2], "c": [3]}), no_sleep)


def test_backoff_delays() -> None:
    assert retry_delay(Decision("retry", backoff="none", delay=2), 3) == 0
    assert retry_delay(Decision("retry", backoff="linear", delay=2), 3) == 6
    assert retry_delay(Decision("retry", backoff="exponential", delay=1), 3) == 4
