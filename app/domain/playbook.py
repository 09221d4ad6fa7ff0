"""Typed, immutable playbook model and the YAML parser (dsl §1, §2)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import yaml

from app.domain.graph import Graph
from app.domain.templating import has_template, template_names
from app.errors import InvalidPlaybook

__all__ = ["Arc", "Loop", "Next", "Playbook", "Step", "build_playbook", "parse_playbook"]

TASK_SEQUENCE = "task_sequence"


@dataclass(frozen=True)
class Arc:
    """One `next.arcs[]` entry."""

    step: str
    when: Any = None
    set: Mapping[str, Any] = field(default_factory=dict)
    has_when: bool = False


@dataclass(frozen=True)
class Next:
    """The step router."""

    mode: str = "exclusive"
    on_no_match: str = "complete"
    arcs: tuple[Arc, ...] = ()


@dataclass(frozen=True)
class Loop:
    """The loop modifier of a step."""

    iterator: str
    in_expr: Any = None
    cursor: Mapping[str, Any] | None = None
    mode: str = "sequential"
    max_in_flight: Any = None
    spec: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """One workflow step, normalised."""

    name: str
    tool_kind: str
    tool: Mapping[str, Any] | None = None
    pipeline: tuple[Mapping[str, Any], ...] | None = None
    input: Mapping[str, Any] = field(default_factory=dict)
    loop: Loop | None = None
    next: Next = field(default_factory=Next)
    set: Mapping[str, Any] = field(default_factory=dict)
    spec: Mapping[str, Any] = field(default_factory=dict)
    when: Any = None
    admit_rules: tuple[Mapping[str, Any], ...] = ()
    desc: str | None = None
    wrapped_single: bool = False
    line: int | None = None

    @property
    def is_pipeline(self) -> bool:
        return self.pipeline is not None

    @cached_property
    def referenced_names(self) -> frozenset[str]:
        """Top-level names referenced by the step's tool, input and spec templates."""
        names: set[str] = set()
        for s in _strings([self.tool, list(self.pipeline or ()), self.input, self.spec]):
            names |= template_names(s)
        return frozenset(names)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if has_template(value) else []
    if isinstance(value, Mapping):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


@dataclass(frozen=True)
class Playbook:
    """A parsed, validated playbook."""

    api_version: str
    kind: str
    name: str
    path: str
    version: Any
    metadata: Mapping[str, Any]
    workload: Mapping[str, Any]
    keychain: tuple[Mapping[str, Any], ...]
    executor: Mapping[str, Any]
    workbook: Mapping[str, Mapping[str, Any]]
    steps: tuple[Step, ...]
    entry_step: str

    @cached_property
    def by_name(self) -> dict[str, Step]:
        return {s.name: s for s in self.steps}

    @cached_property
    def graph(self) -> Graph:
        return Graph({s.name: [a.step for a in s.next.arcs] for s in self.steps})

    def step(self, name: str) -> Step:
        """The step called `name` (KeyError when absent)."""
        return self.by_name[name]


def _as_mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def normalize_arcs(raw_next: Any) -> tuple[str, str, list[dict[str, Any]]]:
    """Turn every accepted `next` shape into (mode, on_no_match, [raw arc mappings])."""
    if raw_next is None:
        return "exclusive", "complete", []
    if isinstance(raw_next, str):
        return "exclusive", "complete", [{"step": raw_next}]
    if isinstance(raw_next, list):
        arcs: list[dict[str, Any]] = []
        for item in raw_next:
            if isinstance(item, str):
                arcs.append({"step": item})
            elif isinstance(item, Mapping) and "then" in item and "step" not in item:
                then = item.get("then")
                targets = then if isinstance(then, list) else [then]
                for t in targets:
                    arc = {"step": t} if isinstance(t, str) else dict(t) if isinstance(t, Mapping) else {}
                    if "when" in item and "when" not in arc:
                        arc["when"] = item["when"]
                    arcs.append(arc)
            elif isinstance(item, Mapping):
                arcs.append(dict(item))
            else:
                arcs.append({"step": item})
        return "exclusive", "complete", arcs
    if isinstance(raw_next, Mapping):
        if "arcs" not in raw_next and "step" in raw_next:
            return "exclusive", "complete", [dict(raw_next)]
        spec = _as_mapping(raw_next.get("spec"))
        raw_arcs = raw_next.get("arcs") or []
        if not isinstance(raw_arcs, list):
            raw_arcs = [raw_arcs]
        arcs = [dict(a) if isinstance(a, Mapping) else {"step": a} for a in raw_arcs]
        return str(spec.get("mode") or "exclusive"), str(spec.get("on_no_match") or "complete"), arcs
    return "exclusive", "complete", []


def normalize_tasks(raw_tool: list[Any]) -> list[dict[str, Any]]:
    """Normalise pipeline items (flat, unnamed, nested-label shapes) into flat tasks with `name`."""
    tasks: list[dict[str, Any]] = []
    for i, item in enumerate(raw_tool):
        if not isinstance(item, Mapping):
            tasks.append({"name": f"task_{i}", "kind": None})
            continue
        if "kind" not in item and len(item) == 1:
            label, body = next(iter(item.items()))
            if isinstance(body, Mapping):
                task = {"name": str(label), **body}
            else:
                task = {"name": f"task_{i}", **item}
        else:
            task = dict(item)
            task.setdefault("name", f"task_{i}")
        if "input" not in task and isinstance(task.get("args"), Mapping):
            task["input"] = task.pop("args")
        tasks.append(task)
    return tasks


def _resolve_workbook(tool: dict[str, Any], workbook: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    entry = workbook[str(tool.get("name"))]
    base = copy.deepcopy(dict(_as_mapping(entry.get("tool"))))
    ref_input = tool.get("input", tool.get("args"))
    if ref_input is not None:
        base_input = base.get("input", base.get("args"))
        if isinstance(ref_input, Mapping) and isinstance(base_input, Mapping):
            base["input"] = {**base_input, **ref_input}
        else:
            base["input"] = ref_input
        base.pop("args", None)
    return base


def _build_step(raw: Mapping[str, Any], workbook: Mapping[str, Mapping[str, Any]], line: int | None) -> Step:
    name = str(raw["step"])
    raw_tool = raw.get("tool")
    tool: dict[str, Any] | None = None
    pipeline: tuple[Mapping[str, Any], ...] | None = None
    wrapped = False
    if isinstance(raw_tool, list):
        pipeline = tuple(normalize_tasks(raw_tool))
    else:
        tool = dict(_as_mapping(raw_tool))
        if tool.get("kind") == "workbook":
            tool = _resolve_workbook(tool, workbook)
        if "input" not in tool and isinstance(tool.get("args"), Mapping):
            tool["input"] = tool.pop("args")
        rules = _as_mapping(_as_mapping(tool.get("spec")).get("policy")).get("rules")
        if rules:
            pipeline = ({"name": f"{name}_task", **tool},)
            tool = None
            wrapped = True
    step_input = raw.get("input", raw.get("args")) or {}
    mode, on_no_match, raw_arcs = normalize_arcs(raw.get("next"))
    arcs = []
    for a in raw_arcs:
        arc_set = dict(_as_mapping(a.get("set")))
        for k, v in _as_mapping(a.get("args")).items():
            arc_set.setdefault(k, v)
        arcs.append(Arc(step=str(a.get("step")), when=a.get("when"), set=arc_set, has_when="when" in a))
    loop = None
    raw_loop = raw.get("loop")
    if isinstance(raw_loop, Mapping):
        lspec = _as_mapping(raw_loop.get("spec"))
        loop = Loop(
            iterator=str(raw_loop.get("iterator") or raw_loop.get("element") or ""),
            in_expr=raw_loop.get("in"),
            cursor=_as_mapping(raw_loop.get("cursor")) or None,
            mode=str(lspec.get("mode") or raw_loop.get("mode") or "sequential"),
            max_in_flight=lspec.get("max_in_flight", raw_loop.get("max_in_flight")),
            spec=lspec,
        )
    spec = _as_mapping(raw.get("spec"))
    admit = _as_mapping(_as_mapping(spec.get("policy")).get("admit")).get("rules") or []
    return Step(
        name=name,
        tool_kind=TASK_SEQUENCE if pipeline is not None else str(_as_mapping(tool).get("kind")),
        tool=tool,
        pipeline=pipeline,
        input=_as_mapping(step_input),
        loop=loop,
        next=Next(mode=mode, on_no_match=on_no_match, arcs=tuple(arcs)),
        set=_as_mapping(raw.get("set")),
        spec=spec,
        when=raw.get("when"),
        admit_rules=tuple(r for r in admit if isinstance(r, Mapping)),
        desc=raw.get("desc"),
        wrapped_single=wrapped,
        line=line,
    )


def entry_step_name(doc: Mapping[str, Any], names: list[str]) -> str:
    """Entry step rule (dsl §1.5)."""
    entry = _as_mapping(_as_mapping(doc.get("executor")).get("spec")).get("entry_step")
    if entry:
        return str(entry)
    if "start" in names:
        return "start"
    return names[0]


def build_playbook(doc: Mapping[str, Any], step_lines: list[int | None] | None = None) -> Playbook:
    """Build the model from an already validated document."""
    meta = _as_mapping(doc.get("metadata"))
    workbook = {
        str(w["name"]): w for w in (doc.get("workbook") or []) if isinstance(w, Mapping) and "name" in w
    }
    raw_steps = list(doc["workflow"])
    lines = step_lines or [None] * len(raw_steps)
    steps = tuple(_build_step(s, workbook, lines[i]) for i, s in enumerate(raw_steps))
    return Playbook(
        api_version=str(doc.get("apiVersion")),
        kind=str(doc.get("kind")),
        name=str(meta.get("name")),
        path=str(meta.get("path") or meta.get("name")),
        version=meta.get("version"),
        metadata=meta,
        workload=_as_mapping(doc.get("workload")),
        keychain=tuple(k for k in (doc.get("keychain") or []) if isinstance(k, Mapping)),
        executor=_as_mapping(doc.get("executor")),
        workbook=workbook,
        steps=steps,
        entry_step=entry_step_name(doc, [s.name for s in steps]),
    )


def parse_playbook(text: str) -> tuple[Playbook, list[str]]:
    """Parse and validate YAML text; raise InvalidPlaybook with structured problems."""
    from app.domain.validate import validate_document

    doc, lines, warnings = validate_document(text)
    return build_playbook(doc, lines), warnings


def load_yaml(text: str) -> tuple[Any, yaml.Node | None]:
    """Load YAML text and its composed node tree (for line numbers)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise InvalidPlaybook(
            f"Invalid YAML: {exc}",
            [{"step": None, "field": None, "reason": f"Invalid YAML: {exc}", "line": line}],
        ) from exc
    return data, node
