"""Render the noetl-control-plane Helm chart without the helm binary.

    python deploy/render.py [-f values-override.yaml ...] [--set-file ...] [--name R] [--namespace NS] [-o out.yaml]

The chart under ``deploy/helm/noetl-control-plane`` is an ordinary Helm chart (``helm template`` and
``helm install`` render it as usual). Its templates are written in a deliberately small subset of Go
``text/template`` + the Sprig/Helm functions listed in ``FUNCS`` below, so this module can render them
deterministically in pure Python; the manifest test (``tests/unit/deploy``) uses it, because no helm
binary is available on the build machines. Supported subset:

* actions ``{{ pipeline }}``, ``{{ $v := pipeline }}``, ``{{ $v = pipeline }}``, comments ``{{/* */}}``,
  whitespace trimming ``{{-`` / ``-}}``;
* ``if`` / ``else if`` / ``else`` / ``end``, ``range`` (``$v :=`` and ``$k, $v :=`` forms, over lists,
  maps in sorted key order and integers via ``until``), ``with``, ``define`` + ``include``;
* operands ``.``, ``.A.b``, ``$``, ``$v.a``, ``"strings"``, numbers, ``true``/``false``/``nil`` and
  parenthesised pipelines; ``a | f x`` passes ``a`` as the last argument of ``f``.

Anything outside the subset raises ``TemplateError`` rather than rendering something helm would not.
Values are merged like helm: the chart's ``values.yaml`` first, then each ``-f`` file (maps merged
recursively, everything else replaced). Output: the documents of every non-underscore template, in file
name order, separated by ``---`` and prefixed by ``# Source:`` comments, as ``helm template`` prints them.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

CHART_DIR = Path(__file__).resolve().parent / "helm" / "noetl-control-plane"


class TemplateError(Exception):
    """A template outside the supported subset, or a `fail` / `required` at render time."""


# --------------------------------------------------------------------------------------------- lexing

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>"(?:[^"\\]|\\.)*")|(?P<raw>`[^`]*`)|
        (?P<num>-?\d+(?:\.\d+)?)|
        (?P<decl>:=)|(?P<assign>=)|(?P<pipe>\|)|(?P<lp>\()|(?P<rp>\))|(?P<comma>,)|
        (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)|
        (?P<field>\.(?:[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)?)|
        (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.X,
)


def _tokens(src: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    src = src.strip()
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"cannot parse action near {src[pos : pos + 30]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(src) and src[pos].isspace():
            pos += 1
    return out


def _lex(text: str) -> list[tuple[str, Any]]:
    """Split into ("text", s) and ("action", tokens) items, applying the trim markers."""
    items: list[tuple[str, Any]] = []
    pos = 0
    trim_next = False
    for m in _ACTION.finditer(text):
        chunk = text[pos : m.start()]
        if trim_next:
            chunk = chunk.lstrip()
        if m.group(1):
            chunk = chunk.rstrip()
        if chunk:
            items.append(("text", chunk))
        body = m.group(2).strip()
        if not (body.startswith("/*") and body.endswith("*/")):
            items.append(("action", _tokens(body)))
        trim_next = bool(m.group(3))
        pos = m.end()
    tail = text[pos:]
    if trim_next:
        tail = tail.lstrip()
    if tail:
        items.append(("text", tail))
    return items


# -------------------------------------------------------------------------------------------- parsing


class _Parser:
    def __init__(self, items: list[tuple[str, Any]], defines: dict[str, list[Any]]):
        self.items, self.i, self.defines = items, 0, defines

    def parse(self, stop: tuple[str, ...] = ()) -> tuple[list[Any], list[tuple[str, str]] | None]:
        nodes: list[Any] = []
        while self.i < len(self.items):
            kind, val = self.items[self.i]
            self.i += 1
            if kind == "text":
                nodes.append(("text", val))
                continue
            head = val[0][1] if val and val[0][0] == "ident" else ""
            if head in ("end", "else"):
                if head not in stop and not (head == "else" and "else" in stop):
                    raise TemplateError(f"unexpected {{{{ {head} }}}}")
                return nodes, val
            if head == "if":
                nodes.append(self._if(val[1:]))
            elif head in ("range", "with"):
                nodes.append(self._block(head, val[1:]))
            elif head == "define":
                name = json.loads(val[1][1])
                body, end = self.parse(("end",))
                self._expect_end(end)
                self.defines[name] = body
            elif head in ("template", "block", "break", "continue"):
                raise TemplateError(f"{{{{ {head} }}}} is outside the supported subset")
            else:
                nodes.append(("action", self._decl(val)))
        if stop:
            raise TemplateError("missing {{ end }}")
        return nodes, None

    @staticmethod
    def _expect_end(end: list[tuple[str, str]] | None) -> None:
        if not end or end[0][1] != "end" or len(end) != 1:
            raise TemplateError("expected {{ end }}")

    def _if(self, cond: list[tuple[str, str]]) -> Any:
        branches = []
        while True:
            body, end = self.parse(("end", "else"))
            branches.append((_pipeline(cond), body))
            assert end is not None
            if end[0][1] == "end":
                return ("if", branches, [])
            if len(end) > 1 and end[1] == ("ident", "if"):
                cond = end[2:]
                continue
            else_body, end2 = self.parse(("end",))
            self._expect_end(end2)
            return ("if", branches, else_body)

    def _block(self, kind: str, toks: list[tuple[str, str]]) -> Any:
        names: list[str] = []
        if any(t[0] == "decl" for t in toks):
            idx = next(i for i, t in enumerate(toks) if t[0] == "decl")
            names = [t[1] for t in toks[:idx] if t[0] == "var"]
            toks = toks[idx + 1 :]
        body, end = self.parse(("end", "else"))
        else_body: list[Any] = []
        assert end is not None
        if end[0][1] == "else":
            else_body, end2 = self.parse(("end",))
            self._expect_end(end2)
        return (kind, names, _pipeline(toks), body, else_body)

    @staticmethod
    def _decl(toks: list[tuple[str, str]]) -> Any:
        if len(toks) > 2 and toks[0][0] == "var" and toks[1][0] in ("decl", "assign"):
            return (toks[1][0], toks[0][1], _pipeline(toks[2:]))
        return ("print", None, _pipeline(toks))


def _pipeline(toks: list[tuple[str, str]]) -> list[list[Any]]:
    """A pipeline: commands separated by |, each a list of operands (parenthesised pipelines nested)."""
    cmds: list[list[Any]] = [[]]
    i = 0
    while i < len(toks):
        kind, val = toks[i]
        if kind == "pipe":
            cmds.append([])
        elif kind == "lp":
            depth, j = 1, i + 1
            while depth:
                if j >= len(toks):
                    raise TemplateError("unbalanced parenthesis")
                depth += {"lp": 1, "rp": -1}.get(toks[j][0], 0)
                j += 1
            cmds[-1].append(("sub", _pipeline(toks[i + 1 : j - 1])))
            i = j
            continue
        elif kind in ("decl", "assign", "comma", "rp"):
            raise TemplateError(f"unexpected {val!r}")
        else:
            cmds[-1].append((kind, val))
        i += 1
    if any(not c for c in cmds):
        raise TemplateError("empty command in pipeline")
    return cmds


# ----------------------------------------------------------------------------------------- evaluating


def _truthy(v: Any) -> bool:
    return not (v is None or v is False or (v == 0 and not isinstance(v, bool)) or v in ("", [], {}))


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (list, dict)):
        raise TemplateError(f"printing a {type(v).__name__} directly; use toYaml")
    return str(v)


def _to_yaml(v: Any) -> str:
    if v is None or v == {} or v == []:
        return "{}" if isinstance(v, dict) else ("[]" if isinstance(v, list) else "null")
    return yaml.safe_dump(v, sort_keys=True, default_flow_style=False, width=1 << 16).rstrip("\n")


def _indent(n: int, s: str) -> str:
    return "\n".join(" " * int(n) + line for line in str(s).split("\n"))


def _go_printf(fmt: str, *args: Any) -> str:
    return re.sub(r"%[vsdq]", "%s", fmt) % tuple(_fmt(a) for a in args)


def _required(msg: str, v: Any) -> Any:
    if v is None or v == "":
        raise TemplateError(msg)
    return v


def _fail(msg: str) -> str:
    raise TemplateError(msg)


FUNCS: dict[str, Callable[..., Any]] = {
    "quote": lambda *a: " ".join(json.dumps(_fmt(x)) for x in a),
    "squote": lambda *a: " ".join("'" + _fmt(x) + "'" for x in a),
    "toYaml": _to_yaml,
    "toJson": lambda v: json.dumps(v, sort_keys=True, separators=(",", ":")),
    "nindent": lambda n, s: "\n" + _indent(n, s),
    "indent": _indent,
    "default": lambda d, *v: v[0] if v and _truthy(v[0]) else d,
    "required": _required,
    "fail": _fail,
    "printf": _go_printf,
    "print": lambda *a: "".join(_fmt(x) for x in a),
    "eq": lambda a, *b: any(a == x for x in b),
    "ne": lambda a, b: a != b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "not": lambda a: not _truthy(a),
    "empty": lambda a: not _truthy(a),
    "len": len,
    "list": lambda *a: list(a),
    "dict": lambda *a: {a[i]: a[i + 1] for i in range(0, len(a), 2)},
    "hasKey": lambda d, k: isinstance(d, dict) and k in d,
    "index": lambda c, *keys: _path(c, [str(k) for k in keys]),
    "add": lambda *a: sum(int(x) for x in a),
    "sub": lambda a, b: int(a) - int(b),
    "int": lambda a: int(a or 0),
    "toString": _fmt,
    "until": lambda n: list(range(int(n))),
    "trunc": lambda n, s: s[: int(n)],
    "trimSuffix": lambda suf, s: s[: -len(suf)] if suf and s.endswith(suf) else s,
    "trim": lambda s: str(s).strip(),
    "lower": lambda s: str(s).lower(),
    "upper": lambda s: str(s).upper(),
    "replace": lambda old, new, s: str(s).replace(old, new),
    "join": lambda sep, xs: sep.join(_fmt(x) for x in xs),
}


class _Scope:
    def __init__(self, root: Any):
        self.frames: list[dict[str, Any]] = [{"$": root}]

    def get(self, name: str) -> Any:
        for f in reversed(self.frames):
            if name in f:
                return f[name]
        raise TemplateError(f"undefined variable {name}")

    def set(self, name: str, v: Any) -> None:
        for f in reversed(self.frames):
            if name in f:
                f[name] = v
                return
        raise TemplateError(f"assignment to undeclared variable {name}")


def _path(v: Any, parts: list[str]) -> Any:
    for p in parts:
        if v is None:
            return None
        if not isinstance(v, dict):
            raise TemplateError(f"cannot read .{p} of a {type(v).__name__}")
        v = v.get(p)
    return v


class Renderer:
    def __init__(self, defines: dict[str, list[Any]]):
        self.defines = defines

    def run(self, nodes: list[Any], dot: Any, scope: _Scope) -> str:
        out: list[str] = []
        for node in nodes:
            kind = node[0]
            if kind == "text":
                out.append(node[1])
            elif kind == "action":
                op, name, pipe = node[1]
                value = self.pipe(pipe, dot, scope)
                if op == "decl":
                    scope.frames[-1][name] = value
                elif op == "assign":
                    scope.set(name, value)
                else:
                    out.append(_fmt(value))
            elif kind == "if":
                for cond, body in node[1]:
                    if _truthy(self.pipe(cond, dot, scope)):
                        out.append(self._scoped(body, dot, scope))
                        break
                else:
                    out.append(self._scoped(node[2], dot, scope))
            elif kind == "with":
                v = self.pipe(node[2], dot, scope)
                if _truthy(v):
                    out.append(self._scoped(node[3], v, scope, dict.fromkeys(node[1][-1:], v)))
                else:
                    out.append(self._scoped(node[4], dot, scope))
            elif kind == "range":
                names, coll = node[1], self.pipe(node[2], dot, scope)
                if isinstance(coll, int) and not isinstance(coll, bool):
                    coll = list(range(coll))
                pairs = sorted(coll.items()) if isinstance(coll, dict) else list(enumerate(coll or []))
                if not pairs:
                    out.append(self._scoped(node[4], dot, scope))
                for k, v in pairs:
                    bind = {names[0]: v} if len(names) == 1 else dict(zip(names, (k, v), strict=False))
                    out.append(self._scoped(node[3], v, scope, bind))
        return "".join(out)

    def _scoped(self, body: list[Any], dot: Any, scope: _Scope, bind: dict[str, Any] | None = None) -> str:
        scope.frames.append(dict(bind or {}))
        try:
            return self.run(body, dot, scope)
        finally:
            scope.frames.pop()

    def pipe(self, cmds: list[list[Any]], dot: Any, scope: _Scope) -> Any:
        value: Any = _NOARG
        for cmd in cmds:
            value = self.command(cmd, dot, scope, value)
        return value

    def command(self, cmd: list[Any], dot: Any, scope: _Scope, piped: Any) -> Any:
        head_kind, head = cmd[0]
        if head_kind == "ident" and head not in ("true", "false", "nil"):
            args = [self.operand(o, dot, scope) for o in cmd[1:]]
            if piped is not _NOARG:
                args.append(piped)
            if head == "include":
                name, ctx = args
                if name not in self.defines:
                    raise TemplateError(f"no template {name!r}")
                return self.run(self.defines[name], ctx, _Scope(ctx))
            if head == "and":
                return next((a for a in args if not _truthy(a)), args[-1])
            if head == "or":
                return next((a for a in args if _truthy(a)), args[-1])
            if head not in FUNCS:
                raise TemplateError(f"function {head!r} is outside the supported subset")
            return FUNCS[head](*args)
        if len(cmd) != 1 or piped is not _NOARG:
            raise TemplateError(f"{head!r} is not a function")
        return self.operand(cmd[0], dot, scope)

    def operand(self, op: tuple[str, Any], dot: Any, scope: _Scope) -> Any:
        kind, val = op
        if kind == "str":
            return json.loads(val)
        if kind == "raw":
            return val[1:-1]
        if kind == "num":
            return float(val) if "." in val else int(val)
        if kind == "ident":
            return (
                {"true": True, "false": False, "nil": None}[val]
                if val in ("true", "false", "nil")
                else (self.command([op], dot, scope, _NOARG))
            )
        if kind == "field":
            return _path(dot, [p for p in val.split(".") if p])
        if kind == "var":
            name, *parts = val.split(".")
            return _path(scope.get(name), parts)
        if kind == "sub":
            return self.pipe(val, dot, scope)
        raise TemplateError(f"unexpected operand {val!r}")


_NOARG = object()


# -------------------------------------------------------------------------------------------- helm-ish


def merge_values(base: Any, override: Any) -> Any:
    """Helm's coalescing: maps merge recursively, other values replace; null deletes a key."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = merge_values(base.get(k), v)
        return out
    return override


def load_values(value_files: list[Path], chart_dir: Path = CHART_DIR) -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((chart_dir / "values.yaml").read_text()) or {}
    for f in value_files:
        values = merge_values(values, yaml.safe_load(Path(f).read_text()) or {})
    return values


def render(
    value_files: list[Path] | None = None,
    *,
    release: str = "noetl",
    namespace: str = "noetl",
    chart_dir: Path = CHART_DIR,
    values: dict[str, Any] | None = None,
) -> str:
    """The rendered manifests as one multi-document YAML string (deterministic)."""
    chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    vals = values if values is not None else load_values(list(value_files or []), chart_dir)
    root = {
        "Values": vals,
        "Release": {"Name": release, "Namespace": namespace, "Service": "Helm"},
        "Chart": {"Name": chart["name"], "Version": chart["version"], "AppVersion": chart.get("appVersion")},
    }
    files = sorted((chart_dir / "templates").glob("*"))
    defines: dict[str, list[Any]] = {}
    parsed: list[tuple[Path, list[Any]]] = []
    for f in files:
        if f.suffix not in (".yaml", ".yml", ".tpl"):
            continue
        nodes, _ = _Parser(_lex(f.read_text()), defines).parse()
        if not f.name.startswith("_"):
            parsed.append((f, nodes))
    renderer = Renderer(defines)
    docs: list[str] = []
    for f, nodes in parsed:
        text = renderer.run(nodes, root, _Scope(root))
        for doc in re.split(r"^---\s*$", text, flags=re.M):
            if doc.strip():
                docs.append(f"# Source: {chart['name']}/templates/{f.name}\n{doc.strip()}\n")
    return "---\n" + "---\n".join(docs)


def render_objects(value_files: list[Path] | None = None, **kw: Any) -> list[dict[str, Any]]:
    """The rendered manifests parsed with PyYAML."""
    return [d for d in yaml.safe_load_all(render(value_files, **kw)) if d]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-f", "--values", action="append", default=[], type=Path, help="values file (repeatable)")
    p.add_argument("--name", default="noetl", help="release name")
    p.add_argument("--namespace", default="noetl")
    p.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    args = p.parse_args(argv)
    try:
        out = render(args.values, release=args.name, namespace=args.namespace)
    except TemplateError as exc:
        print(f"render: {exc}", file=sys.stderr)
        return 1
    if args.output:
        args.output.write_text(out)
    else:
        sys.stdout.write(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
