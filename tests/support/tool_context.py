"""Factories for tool tests: a ToolContext with valid defaults and an in-memory credential table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.worker.tools.base import Credentials, ServerApi, ToolContext, ToolError


class StaticCredentials:
    """Credentials from a fixed table (`alias -> {type, data}`); records every alias asked for."""

    def __init__(self, table: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.table = dict(table or {})
        self.asked: list[str] = []

    async def resolve(self, alias: str) -> Mapping[str, Any]:
        self.asked.append(alias)
        if alias not in self.table:
            raise ToolError(f"credential '{alias}' not found", code="credential_not_found")
        return self.table[alias]


class NoServer:
    """A ServerApi for tools that must not call the server."""

    async def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        raise AssertionError(f"unexpected server call GET {path}")

    async def post_json(self, path: str, body: Any) -> Any:
        raise AssertionError(f"unexpected server call POST {path}")


def make_ctx(
    *,
    api: ServerApi | None = None,
    credentials: Credentials | None = None,
    execution_id: int = 1001,
    server_url: str = "http://127.0.0.1:9",
    **kw: Any,
) -> ToolContext:
    return ToolContext(
        execution_id=execution_id,
        step="step1",
        command_id="42",
        worker_id="worker-test",
        server_url=server_url,
        api=api or NoServer(),
        credentials=credentials or StaticCredentials(),
        **kw,
    )
