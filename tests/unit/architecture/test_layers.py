"""Dependencies point inward: app/ never imports handlers/ or projections/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
# The process entry shim is the one documented exception (ARCHITECTURE.md, rule 1).
ALLOWED = {ROOT / "app" / "__main__.py"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_app_never_imports_outer_layers() -> None:
    offenders = []
    for path in (ROOT / "app").rglob("*.py"):
        if path in ALLOWED:
            continue
        for name in _imports(path):
            if name.split(".")[0] in {"handlers", "projections"}:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, offenders


def test_domain_is_pure() -> None:
    forbidden = {"asyncpg", "aiohttp", "faststream", "nats"}
    offenders = []
    for path in (ROOT / "app" / "domain").rglob("*.py"):
        for name in _imports(path):
            if name.split(".")[0] in forbidden:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, offenders


def test_workers_and_gateway_never_touch_postgres() -> None:
    offenders = []
    for sub in ("worker", "gateway"):
        for path in (ROOT / "app" / sub).rglob("*.py"):
            if "tools" in path.parts:  # the postgres tool talks to tenants' databases, not ours
                continue
            for name in _imports(path):
                if name.split(".")[0] == "asyncpg" or name.startswith(("app.db", "app.store")):
                    offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, offenders
