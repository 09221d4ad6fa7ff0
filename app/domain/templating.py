"""Jinja2 templating for playbooks: sandboxed, lenient undefined, typed rendering (dsl §3)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, ItemsView, KeysView, Mapping, ValuesView
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, Template, nodes
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

__all__ = [
    "ResultDict",
    "TemplateError",
    "compile_check",
    "has_template",
    "is_truthy",
    "mentions",
    "render_text",
    "render_value",
]

_SINGLE_EXPR = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.DOTALL)
_TOJSON_TAIL = re.compile(r"\|\s*tojson\s*(\([^)]*\))?\s*$")
_FALSY_STRINGS = frozenset({"false", "0", "no", "none", "null", "off", "{}", "[]", ""})


class TemplateError(Exception):
    """A template failed to compile or render."""

    def __init__(self, template: str, message: str) -> None:
        super().__init__(f"{message} (template: {template!r})")
        self.template = template
        self.message = message


class ResultDict(dict):  # type: ignore[type-arg]
    """A step result mapping: `.data` resolves to the mapping itself when it has no `data` key."""


class LenientUndefined(ChainableUndefined):
    """Chainable undefined that is falsy, renders empty and compares unequal/false (dsl §3.1)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return False

    def __ne__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return id(type(self))

    def __lt__(self, other: object) -> bool:  # type: ignore[override]
        return False

    __le__ = __gt__ = __ge__ = __lt__  # type: ignore[assignment]


def _is_undef(value: Any) -> bool:
    return isinstance(value, ChainableUndefined)


def _default(value: Any, default_value: Any = "", boolean: bool = False) -> Any:
    """`default` that replaces undefined AND None (and falsy values when boolean=True)."""
    if _is_undef(value) or value is None or (boolean and not value):
        return default_value
    return value


def _tojson(value: Any, indent: int | None = None) -> str:
    if _is_undef(value):
        return "null"
    if indent is None:
        return json.dumps(value, separators=(",", ":"), default=_json_default)
    return json.dumps(value, indent=indent, default=_json_default)


def _json_default(value: Any) -> Any:
    if _is_undef(value):
        return None
    return str(value)


def _fromjson(value: Any) -> Any:
    if _is_undef(value) or value is None:
        return None
    if not isinstance(value, str | bytes):
        return value
    return json.loads(value)


def _int(value: Any, default: int = 0, base: int = 10) -> int:
    if _is_undef(value) or value is None:
        return default
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return int(value)
    try:
        return int(str(value).strip(), base)
    except ValueError:
        try:
            return int(float(str(value).strip()))
        except ValueError:
            return default


def _float(value: Any, default: float = 0.0) -> float:
    if _is_undef(value) or value is None:
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _b64encode(value: Any) -> str:
    data = value if isinstance(value, bytes) else str(value).encode("utf-8")
    return base64.b64encode(data).decode("ascii")


def _b64decode(value: Any) -> str:
    raw = value if isinstance(value, bytes) else str(value).encode("ascii")
    return base64.b64decode(raw + b"=" * (-len(raw) % 4)).decode("utf-8")


def _keys(value: Any) -> list[Any]:
    return list(value.keys()) if isinstance(value, Mapping) else []


def _values(value: Any) -> list[Any]:
    return list(value.values()) if isinstance(value, Mapping) else []


def _items(value: Any) -> list[Any]:
    return [list(kv) for kv in value.items()] if isinstance(value, Mapping) else []


def _length(value: Any) -> int:
    if _is_undef(value) or value is None:
        return 0
    try:
        return len(value)
    except TypeError:
        return 0


def _finalize(value: Any) -> Any:
    # null renders as the empty string inside text (dsl §3.1)
    return "" if value is None else value


class _Env(ImmutableSandboxedEnvironment):
    """Sandboxed environment with the `.data` alias on step results."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if attribute == "data" and type(obj) is ResultDict and "data" not in obj:
            return obj
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if argument == "data" and type(obj) is ResultDict and "data" not in obj:
            return obj
        return super().getitem(obj, argument)


def _build_env() -> _Env:
    env = _Env(undefined=LenientUndefined, finalize=_finalize, autoescape=False, cache_size=0)
    filters: dict[str, Callable[..., Any]] = {
        "default": _default,
        "d": _default,
        "tojson": _tojson,
        "fromjson": _fromjson,
        "from_json": _fromjson,
        "int": _int,
        "float": _float,
        "b64encode": _b64encode,
        "b64decode": _b64decode,
        "keys": _keys,
        "values": _values,
        "items": _items,
        "length": _length,
        "len": _length,
        "count": _length,
    }
    env.filters.update(filters)
    env.globals.update({"True": True, "False": False, "None": None})
    return env


_ENV = _build_env()


def has_template(value: str) -> bool:
    """True when the string contains Jinja markup."""
    return "{{" in value or "{%" in value


@lru_cache(maxsize=4096)
def _compile_template(source: str) -> Template:
    return _ENV.from_string(source)


@lru_cache(maxsize=4096)
def _compile_expr(expr: str) -> Any:
    return _ENV.compile_expression(expr, undefined_to_none=False)


def compile_check(source: str) -> str | None:
    """Compile a template; return the syntax error message or None."""
    try:
        m = _SINGLE_EXPR.match(source)
        if m is not None:
            _compile_expr(m.group("expr"))
        else:
            _compile_template(source)
    except JinjaTemplateError as exc:
        return str(exc)
    return None


def _coerce_text(text: str) -> Any:
    stripped = text.strip()
    if stripped == "":
        return text
    if stripped in ("true", "True"):
        return True
    if stripped in ("false", "False"):
        return False
    if stripped in ("null", "None"):
        return None
    first = stripped[0]
    if first in '-0123456789{["':
        try:
            return json.loads(stripped)
        except ValueError:
            return text
    return text


def _native(value: Any) -> Any:
    if _is_undef(value):
        return None
    if isinstance(value, Markup):
        return str(value)
    if isinstance(value, KeysView | ValuesView | tuple | set | frozenset):
        return list(value)
    if isinstance(value, ItemsView):
        return [list(kv) for kv in value]
    return value


def render_text(template: str, ctx: Mapping[str, Any]) -> str:
    """Render a template to text (no typed coercion)."""
    if not has_template(template):
        return template
    try:
        return _compile_template(template).render(ctx)
    except JinjaTemplateError as exc:
        raise TemplateError(template, str(exc)) from exc
    except Exception as exc:
        raise TemplateError(template, f"{type(exc).__name__}: {exc}") from exc


def render_string(template: str, ctx: Mapping[str, Any]) -> Any:
    """Typed rendering of one string (dsl §3.2)."""
    if not has_template(template):
        return template
    m = _SINGLE_EXPR.match(template)
    if m is not None:
        expr = m.group("expr")
        try:
            value = _compile_expr(expr)(ctx)
        except JinjaTemplateError as exc:
            raise TemplateError(template, str(exc)) from exc
        except Exception as exc:
            raise TemplateError(template, f"{type(exc).__name__}: {exc}") from exc
        return _native(value)
    return _coerce_text(render_text(template, ctx))


def mentions(value: Any, name: str) -> bool:
    """True when a string (or any string inside a structure) references `name.`."""
    if isinstance(value, str):
        return has_template(value) and (f"{name}." in value or f"{name}[" in value)
    if isinstance(value, Mapping):
        return any(mentions(k, name) or mentions(v, name) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(mentions(v, name) for v in value)
    return False


def render_value(value: Any, ctx: Mapping[str, Any], *, keep: tuple[str, ...] = ("keychain",)) -> Any:
    """Recursively render mappings/lists (keys too); strings mentioning `keep` names stay literal."""
    if isinstance(value, str):
        if not has_template(value):
            return value
        for name in keep:
            if mentions(value, name):
                return value
        return render_string(value, ctx)
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            key = render_value(k, ctx, keep=keep) if isinstance(k, str) and has_template(k) else k
            if not isinstance(key, str | int | float | bool) and key is not None:
                key = str(key)
            out[key] = render_value(v, ctx, keep=keep)
        return out
    if isinstance(value, list | tuple):
        return [render_value(v, ctx, keep=keep) for v in value]
    return value


def truthy_value(value: Any) -> bool:
    """Truthiness of an already-rendered value (dsl §3.6)."""
    if value is None or _is_undef(value) or value is False:
        return False
    if isinstance(value, str):
        return value.strip().lower() not in _FALSY_STRINGS
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, Mapping | list | tuple):
        return len(value) > 0
    return bool(value)


def is_truthy(expr: Any, ctx: Mapping[str, Any]) -> bool:
    """Evaluate a `when` expression (string template, bare expression or YAML boolean)."""
    if expr is None:
        return True
    if not isinstance(expr, str):
        return truthy_value(expr)
    text = expr if has_template(expr) else "{{ " + expr + " }}"
    return truthy_value(render_string(text, ctx))


def template_names(source: str) -> set[str]:
    """Top-level variable names a template references (best effort; empty on syntax errors)."""
    try:
        ast = _ENV.parse(source)
    except JinjaTemplateError:
        return set()
    return {n.name for n in ast.find_all(nodes.Name) if n.ctx == "load"}
