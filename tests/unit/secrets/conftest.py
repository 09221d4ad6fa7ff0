"""Local aiohttp fakes bound to 127.0.0.1 on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeServer:
    url: str
    requests: list[Seen] = field(default_factory=list)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[FakeServer]]]:
    """Start a catch-all server running ``handler``; every request is recorded."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> FakeServer:
        server = FakeServer(url="")

        async def entry(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            server.requests.append(
                Seen(request.method, request.path, request.query_string, dict(request.headers), body)
            )
            return await handler(request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", entry)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        server.url = f"http://127.0.0.1:{port}"
        return server

    yield start
    for r in runners:
        await r.cleanup()
