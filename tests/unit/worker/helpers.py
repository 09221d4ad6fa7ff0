"""A ToolContext for tool unit tests (no server behind it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.worker.tools.base import ToolContext, ToolError


class NoApi:
    async def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        raise AssertionError("no server in unit tests")

    async def post_json(self, path: str, body: Any) -> Any:
        raise AssertionError("no server in unit tests")


class NoCredentials:
    async def resolve(self, alias: str) -> Mapping[str, Any]:
        raise ToolError(f"unknown credential {alias}")


def make_ctx(**kw: Any) -> ToolContext:
    base: dict[str, Any] = {
        "execution_id": 1,
        "step": "s",
        "command_id": "1",
        "worker_id": "w",
        "server_url": "http://127.0.0.1:1",
        "api": NoApi(),
        "credentials": NoCredentials(),
    }
    base.update(kw)
    return ToolContext(**base)
