"""The contract between the worker runtime and its tools: one async function per tool kind."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


class ToolError(Exception):
    """A tool outcome of status error: the step fails unless a policy handles it.

    `data` is result data attached to the failure (an http non-2xx response, a shell run's output);
    `code` is a short machine-readable reason (e.g. a SQLSTATE, `timeout`, `cancelled`)."""

    def __init__(self, message: str, *, data: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data
        self.code = code


class ToolCancelled(ToolError):
    """The execution was cancelled while the tool ran; the runtime reports `cancelled`."""

    def __init__(self, message: str = "cancelled") -> None:
        super().__init__(message, code="cancelled")


class ServerApi(Protocol):
    """The worker's only way to the platform: the server's HTTP API (retries and backoff inside)."""

    async def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """GET {server_url}{path}; the decoded JSON body of a 2xx answer, else raises ApiError."""
        ...

    async def post_json(self, path: str, body: Any) -> Any:
        """POST {server_url}{path} with a JSON body; the decoded JSON body of a 2xx answer."""
        ...


class Credentials(Protocol):
    """Resolves a credential alias for one execution (env allowlist, then the server, sealed or not)."""

    async def resolve(self, alias: str) -> Mapping[str, Any]:
        """`{"type": ..., "data": {...}}` for the alias; raises ToolError when it is unknown."""
        ...


@dataclass
class ToolContext:
    """What a tool may use besides its rendered configuration."""

    execution_id: int
    step: str
    command_id: str
    worker_id: str
    server_url: str
    api: ServerApi
    credentials: Credentials
    render_context: Mapping[str, Any] = field(default_factory=dict)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    timeout_seconds: float | None = None
    nats_url: str = ""


# A tool takes its rendered configuration (the command's `tool_config`, with `input` merged) and returns
# its result data (playbook-dsl.md §2.3), or raises ToolError / ToolCancelled.
Tool = Callable[[dict[str, Any], ToolContext], Awaitable[Any]]
