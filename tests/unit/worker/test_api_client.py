"""The worker's server client: retries on 408/425/429/5xx with Retry-After, 409 handed back at once."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from app.worker.api import ApiError, HttpServerApi, RetryPolicy

pytestmark = pytest.mark.unit


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, dict[str, int]]]:
    hits: dict[str, int] = {}

    async def flaky(request: web.Request) -> web.Response:
        n = hits["flaky"] = hits.get("flaky", 0) + 1
        if n < 3:
            return web.json_response(
                {"detail": {"code": "pool_saturated"}}, status=503, headers={"Retry-After": "0.2"}
            )
        return web.json_response({"ok": n})

    async def conflict(request: web.Request) -> web.Response:
        hits["conflict"] = hits.get("conflict", 0) + 1
        body = {"detail": {"code": "already_terminal", "message": "command is terminal"}}
        return web.json_response(body, status=409)

    async def down(request: web.Request) -> web.Response:
        hits["down"] = hits.get("down", 0) + 1
        return web.json_response({"detail": "x"}, status=502)

    app = web.Application()
    app.router.add_post("/flaky", flaky)
    app.router.add_post("/conflict", conflict)
    app.router.add_get("/down", down)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # noqa: SLF001
    yield f"http://127.0.0.1:{port}", hits
    await runner.cleanup()


async def test_retries_honour_retry_after(server: tuple[str, dict[str, int]]) -> None:
    url, hits = server
    async with aiohttp.ClientSession() as s:
        api = HttpServerApi(url, s)
        t = time.monotonic()
        assert await api.post_json("/flaky", {}) == {"ok": 3}
        assert hits["flaky"] == 3 and time.monotonic() - t >= 0.4


async def test_409_comes_back_with_its_code_without_retry(server: tuple[str, dict[str, int]]) -> None:
    url, hits = server
    async with aiohttp.ClientSession() as s:
        with pytest.raises(ApiError) as info:
            await HttpServerApi(url, s).post_json("/conflict", {})
    assert info.value.status == 409 and info.value.code == "already_terminal"
    assert info.value.message == "command is terminal" and hits["conflict"] == 1


async def test_retries_are_bounded(server: tuple[str, dict[str, int]]) -> None:
    url, hits = server
    async with aiohttp.ClientSession() as s:
        api = HttpServerApi(url, s, policy=RetryPolicy(max_attempts=3, initial=0.01, max_delay=0.02))
        with pytest.raises(ApiError) as info:
            await api.get_json("/down")
    assert info.value.status == 502 and hits["down"] == 3


async def test_connection_errors_are_retryable_and_bounded() -> None:
    async with aiohttp.ClientSession() as s:
        api = HttpServerApi("http://127.0.0.1:1", s, policy=RetryPolicy(max_attempts=2, initial=0.01))
        with pytest.raises(ApiError) as info:
            await api.get_json("/x")
    assert info.value.status == 0 and info.value.retryable
