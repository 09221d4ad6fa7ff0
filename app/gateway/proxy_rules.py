"""Proxy path hygiene and the permission each proxied route needs (gateway.md §12, §5.3)."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

_EXEC = re.compile(r"^executions/(-?\d+)(?:/(status|events|cancellation-check|cancel|rerun))?/?$")
_UI_SCHEMA = re.compile(r"^catalog/(.+)/ui_schema$")


@dataclass(frozen=True)
class Rule:
    """What a request needs: 'authenticated', 'admin', or `action` on `paths` / an execution's path."""

    kind: str
    action: str = ""
    paths: tuple[str, ...] = field(default_factory=tuple)
    execution_id: str | None = None


def path_problem(raw: str) -> str | None:
    """A reason to reject the still-encoded path, or None."""
    for seg in raw.split("/"):
        low = seg.lower()
        decoded = low.replace("%2e", ".")
        if decoded in {".", ".."}:
            return "dot segments are not allowed in the path"
        if "%2f" in low or "%3f" in low or "%23" in low or "%5c" in low:
            return "encoded separators are not allowed in the path"
    return None


def _register_paths(body: Any) -> tuple[str, ...]:
    items: list[Any] = (
        body["items"] if isinstance(body, dict) and isinstance(body.get("items"), list) else [body]
    )
    out = []
    for item in items:
        if not isinstance(item, dict):
            return ()
        content = item.get("content")
        try:
            text = base64.b64decode(content).decode() if isinstance(content, str) else ""
            doc = yaml.safe_load(text) if text else None
        except (ValueError, UnicodeDecodeError, yaml.YAMLError):
            return ()
        path = (doc.get("metadata") or {}).get("path") if isinstance(doc, dict) else None
        if not isinstance(path, str) or not path:
            return ()
        out.append(path)
    return tuple(out)


def decide(method: str, raw: str, body: Any) -> Rule:
    """The rule for one proxied request (fails closed to admin)."""
    path = raw.strip("/")
    if method == "POST" and path == "execute":
        target = body.get("path") if isinstance(body, dict) else None
        return Rule("perm", "execute", (target,) if isinstance(target, str) and target else ())
    if method == "POST" and path == "execute/batch":
        items = body.get("items") if isinstance(body, dict) else body
        items = items if isinstance(items, list) else []
        ok = bool(items) and all(isinstance(i, dict) and isinstance(i.get("path"), str) for i in items)
        paths = [i["path"] for i in items] if ok else []
        return Rule("perm", "execute", tuple(paths) if ok and paths else ())
    m = _EXEC.match(path)
    if m:
        sub = m.group(2)
        if method == "POST" and sub in {"cancel", "rerun"}:
            return Rule("perm", "execute", execution_id=m.group(1))
        if method == "GET" and sub in {None, "status", "events", "cancellation-check"}:
            return Rule("perm", "view", execution_id=m.group(1))
    if method == "POST" and path == "catalog/resource":
        target = body.get("path") if isinstance(body, dict) else None
        return Rule("perm", "view", (target,) if isinstance(target, str) and target else ())
    m = _UI_SCHEMA.match(path)
    if method == "GET" and m:
        return Rule("perm", "view", (m.group(1),))
    if method == "POST" and path in {"catalog/register", "catalog/register/batch"}:
        return Rule("perm", "edit", _register_paths(body))
    return Rule("admin")
