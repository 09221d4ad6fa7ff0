"""Tool lookup by kind: `app.worker.tools.<kind>` modules exposing `async def run(config, ctx)`."""

from __future__ import annotations

import importlib
import re
from typing import cast

from app.worker.tools.base import Tool, ToolError

_KIND = re.compile(r"^[a-z][a-z0-9_]*$")
_NOT_TOOLS = frozenset({"base"})
_cache: dict[str, Tool] = {}


def unsupported(kind: str) -> ToolError:
    """The terminal error for a kind this worker does not implement (playbook-dsl §2.3)."""
    return ToolError(f"tool kind '{kind}' is not supported by this worker", code="unsupported_tool")


def get_tool(kind: str) -> Tool:
    """The tool function for a kind; ToolError when no module implements it."""
    tool = _cache.get(kind)
    if tool is not None:
        return tool
    if not _KIND.match(kind or "") or kind in _NOT_TOOLS:
        raise unsupported(kind)
    try:
        module = importlib.import_module(f"app.worker.tools.{kind}")
    except ModuleNotFoundError as exc:
        if exc.name == f"app.worker.tools.{kind}":
            raise unsupported(kind) from None
        raise
    run = getattr(module, "run", None)
    if not callable(run):
        raise unsupported(kind)
    _cache[kind] = cast(Tool, run)
    return _cache[kind]
