"""Task policies (playbook-dsl §2.8.1): the output envelope, rule matching and scoped `set` writes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.domain.templating import is_truthy, render_value
from app.worker.tools.base import ToolError

ACTIONS = frozenset({"continue", "retry", "jump", "break", "fail"})


@dataclass
class Decision:
    """The action a policy picked for one task attempt, with its parameters and `set` writes."""

    action: str
    attempts: int = 3
    backoff: str = "none"
    delay: float = 1.0
    to: str | None = None
    sets: dict[str, Any] = field(default_factory=dict)


def envelope(kind: str, data: Any, error: ToolError | None, attempt: int, duration_ms: int) -> dict[str, Any]:
    """The `output` a policy sees: `{status, data, error?, http?, meta}`."""
    out: dict[str, Any] = {"status": "ok" if error is None else "error", "data": data}
    status_code = data.get("status_code") if isinstance(data, Mapping) else None
    if error is not None:
        err: dict[str, Any] = {"kind": kind, "message": error.message, "code": error.code}
        if isinstance(status_code, int):
            err.update(status=status_code, status_code=status_code, code=error.code or f"HTTP_{status_code}")
            err["retryable"] = status_code == 429 or status_code >= 500
        else:
            err["retryable"] = error.code in {"timeout", "transport", "connection", "killed"} or (
                kind == "http" and error.data is None
            )
        out["error"] = err
    if kind == "http" and isinstance(data, Mapping):
        out["http"] = {"status": status_code, "headers": data.get("headers") or {}}
    out["meta"] = {"attempt": attempt, "duration_ms": duration_ms}
    return out


def _num(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def decide(policy: Any, ctx: Mapping[str, Any], ok: bool) -> Decision:
    """Evaluate rules top to bottom; the first truthy `when` (or an `else`) wins; default continue/fail."""
    rules = policy.get("rules") if isinstance(policy, Mapping) else None
    for rule in rules if isinstance(rules, list) else []:
        if not isinstance(rule, Mapping):
            continue
        if "else" in rule:
            branch = rule["else"]
            then = branch.get("then") if isinstance(branch, Mapping) else None
            if not isinstance(then, Mapping):
                continue  # malformed else (actions not under then): matches nothing
        elif "when" in rule:
            if not is_truthy(rule["when"], ctx):
                continue
            then = rule.get("then")
        else:
            continue
        then = then if isinstance(then, Mapping) else {}
        action = str(then.get("do") or "continue").lower()
        if action not in ACTIONS:
            action = "continue" if ok else "fail"
        sets = render_value(dict(then.get("set") or {}), ctx) if then.get("set") else {}
        return Decision(
            action=action,
            attempts=int(_num(render_value(then.get("attempts", 3), ctx), 3)),
            backoff=str(then.get("backoff") or "none").lower(),
            delay=_num(render_value(then.get("delay", 1.0), ctx), 1.0),
            to=str(then["to"]) if then.get("to") is not None else None,
            sets=sets if isinstance(sets, dict) else {},
        )
    return Decision(action="continue" if ok else "fail")


def retry_delay(decision: Decision, k: int) -> float:
    """Delay before retry k (1-based): none → 0, linear → delay·k, exponential → delay·2^(k−1)."""
    if decision.backoff == "linear":
        return decision.delay * k
    if decision.backoff == "exponential":
        return float(decision.delay * 2 ** (k - 1))
    return 0.0


def assign(target: dict[str, Any], dotted: str, value: Any) -> None:
    """Write `a.b.c = value` into nested mappings."""
    parts = dotted.split(".")
    node = target
    for p in parts[:-1]:
        nxt = node.get(p)
        if not isinstance(nxt, dict):
            nxt = {}
            node[p] = nxt
        node = nxt
    node[parts[-1]] = value


def apply_scoped(running: dict[str, Any], updates: dict[str, Any], sets: Mapping[str, Any]) -> None:
    """Policy `then.set`: ctx./step./bare keys go to the running context and the execution; iter. stays."""
    for key, value in sets.items():
        key = str(key)
        if key.startswith("iter."):
            iter_map = running.setdefault("iter", {})
            if not isinstance(iter_map, dict):
                iter_map = running["iter"] = {}
            assign(iter_map, key[5:], value)
            continue
        name = key.split(".", 1)[1] if key.startswith(("ctx.", "step.")) else key
        ctx_map = running.get("ctx")
        if not isinstance(ctx_map, dict):
            ctx_map = running["ctx"] = dict(ctx_map) if isinstance(ctx_map, Mapping) else {}
        assign(ctx_map, name, value)
        assign(running, name, value)
        updates[name] = value
