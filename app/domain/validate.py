"""Load-time validation of playbook documents (dsl §1.7, §1.8, §2; server-contract §7.1)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from app.domain.graph import Graph
from app.domain.playbook import entry_step_name, load_yaml, normalize_arcs
from app.domain.templating import compile_check, has_template
from app.errors import InvalidPlaybook

__all__ = ["TOOL_KINDS", "validate_document"]

TOOL_KINDS = frozenset(
    "http postgres duckdb ducklake python workbook playbook playbooks secrets iterator container script "
    "snowflake transfer snowflake_transfer gcs gateway nats shell artifact noop task_sequence rhai "
    "subscription wasm agent mcp result_fetch".split()
)
ROOT_KEYS = frozenset(
    {"apiVersion", "kind", "metadata", "workload", "keychain", "executor", "workbook", "workflow"}
)
LEGACY_REJECTED = ("type", "case", "set_ctx", "set_iter", "result", "outcome")
LEGACY_IGNORED = ("sink", "save", "retry")
ARC_KEYS = frozenset({"step", "when", "set", "args", "desc", "name"})

Problem = dict[str, Any]


class _Lines:
    """Map a key path in the document to its YAML line (1-based) using composed node marks."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.root = root

    def line(self, *path: str | int) -> int | None:
        node = self.root
        best: int | None = node.start_mark.line + 1 if node is not None else None
        for part in path:
            child = None
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if getattr(k, "value", None) == part:
                        child = v
                        best = k.start_mark.line + 1
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                child = node.value[part]
                best = child.start_mark.line + 1
            if child is None:
                return best
            node = child
        return best


class _Collector:
    def __init__(self, lines: _Lines) -> None:
        self.lines = lines
        self.problems: list[Problem] = []
        self.warnings: list[str] = []

    def add(self, step: str | None, fieldname: str | None, reason: str, *path: str | int) -> None:
        self.problems.append(
            {"step": step, "field": fieldname, "reason": reason, "line": self.lines.line(*path)}
        )


def _walk_strings(value: Any, path: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if isinstance(value, str):
        if has_template(value):
            out.append((path, value))
    elif isinstance(value, Mapping):
        for k, v in value.items():
            if isinstance(k, str) and has_template(k):
                out.append((f"{path}.{k}" if path else k, k))
            out.extend(_walk_strings(v, f"{path}.{k}" if path else str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_walk_strings(v, f"{path}[{i}]"))
    return out


def _path_parts(dotted: str) -> list[str | int]:
    parts: list[str | int] = []
    for seg in dotted.replace("]", "").split("."):
        head, *idx = seg.split("[")
        if head:
            parts.append(head)
        parts.extend(int(i) for i in idx if i.isdigit())
    return parts


def _check_root(doc: Mapping[str, Any], c: _Collector) -> None:
    for key in ("apiVersion", "kind", "metadata", "workflow"):
        if key not in doc or doc.get(key) is None:
            c.add(None, key, f"Missing required root key '{key}'")
    if "kind" in doc and doc.get("kind") is not None and str(doc.get("kind")) != "Playbook":
        c.add(None, "kind", f"kind must be 'Playbook', got '{doc.get('kind')}'", "kind")
    meta = doc.get("metadata")
    if "metadata" in doc and (not isinstance(meta, Mapping) or not meta.get("name")):
        c.add(None, "metadata.name", "metadata must be a mapping with a 'name'", "metadata")
    wf = doc.get("workflow")
    if "workflow" in doc and (not isinstance(wf, list) or not wf):
        c.add(None, "workflow", "workflow must be a non-empty list of steps", "workflow")
    for key in doc:
        if key not in ROOT_KEYS:
            c.warnings.append(f"Unknown root key '{key}' ignored")
    wb = doc.get("workbook")
    if wb is not None and not isinstance(wb, list):
        c.add(None, "workbook", "workbook must be a list", "workbook")


def _check_tool_kind(kind: Any, step: str, fieldname: str, c: _Collector, *path: str | int) -> None:
    if kind is None:
        c.add(step, fieldname, f"Step '{step}': tool has no 'kind'", *path)
    elif str(kind) not in TOOL_KINDS:
        c.add(step, fieldname, f"Step '{step}': unknown tool kind '{kind}'", *path)


def _check_tool(raw: Mapping[str, Any], i: int, name: str, workbook: set[str], c: _Collector) -> None:
    tool = raw.get("tool")
    if tool is None:
        c.add(name, "tool", f"Step '{name}': Missing 'tool' field", "workflow", i)
        return
    if isinstance(tool, list):
        if not tool:
            c.add(name, "tool", f"Step '{name}': pipeline has no tasks", "workflow", i, "tool")
        labels: set[str] = set()
        for j, item in enumerate(tool):
            body = item
            label = item.get("name") if isinstance(item, Mapping) else None
            if isinstance(item, Mapping) and "kind" not in item and len(item) == 1:
                label, body = next(iter(item.items()))
            if not isinstance(body, Mapping):
                c.add(
                    name,
                    f"tool[{j}]",
                    f"Step '{name}': pipeline task must be a mapping",
                    "workflow",
                    i,
                    "tool",
                    j,
                )
                continue
            _check_tool_kind(body.get("kind"), name, f"tool[{j}].kind", c, "workflow", i, "tool", j)
            if label is not None:
                if str(label) in labels:
                    c.add(
                        name,
                        f"tool[{j}].name",
                        f"Step '{name}': duplicate task label '{label}'",
                        "workflow",
                        i,
                        "tool",
                        j,
                    )
                labels.add(str(label))
            if isinstance(body.get("eval"), list):
                c.warnings.append(f"Step '{name}': tool 'eval' block ignored")
        return
    if not isinstance(tool, Mapping):
        c.add(
            name, "tool", f"Step '{name}': 'tool' must be a mapping or a list of tasks", "workflow", i, "tool"
        )
        return
    _check_tool_kind(tool.get("kind"), name, "tool.kind", c, "workflow", i, "tool", "kind")
    if tool.get("kind") == "workbook" and str(tool.get("name")) not in workbook:
        c.add(
            name,
            "tool.name",
            f"Step '{name}': unknown workbook '{tool.get('name')}'",
            "workflow",
            i,
            "tool",
            "name",
        )
    if isinstance(tool.get("eval"), list):
        c.warnings.append(f"Step '{name}': tool 'eval' block ignored")
    for key in ("retry", "sink", "save"):
        if key in tool:
            c.warnings.append(f"Step '{name}': tool '{key}' block ignored")


def _check_loop(raw: Mapping[str, Any], i: int, name: str, c: _Collector) -> None:
    loop = raw.get("loop")
    if loop is None:
        return
    if not isinstance(loop, Mapping):
        c.add(name, "loop", f"Step '{name}': loop must be a mapping", "workflow", i, "loop")
        return
    if ("in" in loop) == ("cursor" in loop):
        c.add(
            name,
            "loop.in",
            f"Step '{name}': loop needs exactly one of 'in' or 'cursor'",
            "workflow",
            i,
            "loop",
        )
    if not loop.get("iterator"):
        c.add(
            name, "loop.iterator", f"Step '{name}': loop needs a non-empty 'iterator'", "workflow", i, "loop"
        )


def _check_next(raw: Mapping[str, Any], i: int, name: str, names: set[str], c: _Collector) -> list[str]:
    _, _, arcs = normalize_arcs(raw.get("next"))
    targets: list[str] = []
    arcs_path: tuple[str | int, ...] = ("workflow", i, "next")
    if isinstance(raw.get("next"), Mapping) and "arcs" in raw["next"]:
        arcs_path = ("workflow", i, "next", "arcs")
    for j, arc in enumerate(arcs):
        target = arc.get("step")
        fieldname = f"next.arcs[{j}].step"
        if not isinstance(target, str) or not target:
            c.add(name, fieldname, f"Step '{name}': arc {j} has no target step", *arcs_path, j)
            continue
        targets.append(target)
        if target not in names and target != "end":
            c.add(name, fieldname, f"Step '{name}': next target '{target}' does not exist", *arcs_path, j)
        if "when" in arc and not isinstance(arc["when"], str):
            c.add(
                name,
                f"next.arcs[{j}].when",
                f"Step '{name}': arc 'when' must be a string template",
                *arcs_path,
                j,
                "when",
            )
        for key in arc:
            if key not in ARC_KEYS:
                c.warnings.append(f"Step '{name}': unknown arc key '{key}' ignored (arc to '{target}')")
    return targets


def _check_policy_else(raw: Mapping[str, Any], name: str, c: _Collector) -> None:
    raw_tool = raw.get("tool")
    tools: list[Any] = raw_tool if isinstance(raw_tool, list) else [raw_tool]
    for t in tools:
        if not isinstance(t, Mapping):
            continue
        rules = (
            ((t.get("spec") or {}).get("policy") or {}).get("rules")
            if isinstance(t.get("spec"), Mapping)
            else None
        )
        for rule in rules or []:
            if (
                isinstance(rule, Mapping)
                and isinstance(rule.get("else"), Mapping)
                and "then" not in rule["else"]
            ):
                c.warnings.append(f"Step '{name}': policy 'else' without 'then' matches nothing")


def _check_steps(doc: Mapping[str, Any], c: _Collector) -> dict[str, list[str]]:
    wf = doc["workflow"]
    workbook = {str(w.get("name")) for w in doc.get("workbook") or [] if isinstance(w, Mapping)}
    names: list[str] = []
    for i, raw in enumerate(wf):
        if isinstance(raw, Mapping) and isinstance(raw.get("step"), str) and raw.get("step"):
            if raw["step"] in names:
                c.add(raw["step"], "step", f"Duplicate step name '{raw['step']}'", "workflow", i, "step")
            names.append(raw["step"])
    name_set = set(names)
    graph: dict[str, list[str]] = {}
    for i, raw in enumerate(wf):
        if not isinstance(raw, Mapping):
            c.add(None, f"workflow[{i}]", f"workflow[{i}] must be a mapping", "workflow", i)
            continue
        name = raw.get("step")
        if not isinstance(name, str) or not name:
            c.add(None, f"workflow[{i}].step", f"workflow[{i}] has no 'step' name", "workflow", i)
            continue
        for key in LEGACY_REJECTED:
            if key in raw:
                c.add(name, key, f"Step '{name}': legacy key '{key}' is not supported", "workflow", i, key)
        for key in LEGACY_IGNORED:
            if key in raw:
                c.warnings.append(f"Step '{name}': '{key}' block ignored")
        _check_tool(raw, i, name, workbook, c)
        _check_loop(raw, i, name, c)
        _check_policy_else(raw, name, c)
        graph[name] = _check_next(raw, i, name, name_set, c)
    entry = (
        ((doc.get("executor") or {}).get("spec") or {}).get("entry_step")
        if isinstance(doc.get("executor"), Mapping) and isinstance(doc["executor"].get("spec"), Mapping)
        else None
    )
    if entry and entry not in name_set:
        c.add(
            None,
            "executor.spec.entry_step",
            f"entry_step '{entry}' names no step",
            "executor",
            "spec",
            "entry_step",
        )
    return graph


def _check_templates(doc: Mapping[str, Any], c: _Collector) -> None:
    wf = doc.get("workflow") if isinstance(doc.get("workflow"), list) else []
    for path, text in _walk_strings(doc, ""):
        err = compile_check(text)
        if err is None:
            continue
        step = None
        parts = _path_parts(path)
        fieldname = path
        if len(parts) >= 2 and parts[0] == "workflow" and isinstance(parts[1], int):
            raw = wf[parts[1]] if isinstance(wf, list) and parts[1] < len(wf) else None
            step = raw.get("step") if isinstance(raw, Mapping) else None
            fieldname = ".".join(str(p) for p in parts[2:]) or path
        where = f"Step '{step}' field '{fieldname}'" if step else f"field '{fieldname}'"
        c.add(step, fieldname, f"{where}: invalid template: {err}", *parts)


def validate_document(text: str) -> tuple[dict[str, Any], list[int | None], list[str]]:
    """Validate YAML text; return (document, step lines, warnings) or raise InvalidPlaybook."""
    doc, node = load_yaml(text)
    lines = _Lines(node)
    c = _Collector(lines)
    if not isinstance(doc, Mapping):
        c.add(None, None, "Playbook must be a YAML mapping")
        raise InvalidPlaybook(c.problems[0]["reason"], c.problems)
    _check_root(doc, c)
    if "vars" in doc:
        c.warnings.append("Root 'vars' key ignored")
    graph: dict[str, list[str]] = {}
    if isinstance(doc.get("workflow"), list) and doc["workflow"]:
        graph = _check_steps(doc, c)
    _check_templates(doc, c)
    if c.problems:
        raise InvalidPlaybook(c.problems[0]["reason"], c.problems)
    wf = doc["workflow"]
    names = [s["step"] for s in wf]
    entry = entry_step_name(doc, names)
    reachable = Graph(graph).reachable_from([entry])
    for n in names:
        if n not in reachable:
            c.warnings.append(f"Step '{n}' is unreachable from entry step '{entry}'")
    step_lines = [lines.line("workflow", i) for i in range(len(wf))]
    return dict(doc), step_lines, c.warnings
