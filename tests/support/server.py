"""Run the real control-plane app in-process on a free loopback port."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from app.bootstrap import Deps, build_deps
from app.config import Settings, load_settings
from app.devstack.ports import free_port
from handlers.http.app import build_app
from handlers.roles.lifecycle import Background


def make_settings(db_dsn: str, nats_url: str | None = None, **env: str) -> Settings:
    """Settings from a clean environment plus the given overrides (NOETL_* names)."""
    saved = dict(os.environ)
    try:
        for key in list(os.environ):
            if key.startswith(("NOETL_", "POSTGRES_", "NATS_", "WORKER_")) and not key.startswith(
                "NOETL_TEST_"
            ):
                os.environ.pop(key)
        os.environ.pop("DATABASE_URL", None)
        os.environ["DATABASE_URL"] = db_dsn
        if nats_url:
            os.environ["NATS_URL"] = nats_url
        os.environ.setdefault("NOETL_PORT", str(free_port()))
        os.environ.update(env)
        return load_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


@dataclass
class Api:
    url: str
    deps: Deps
    http: aiohttp.ClientSession

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.http.get(self.url + path, **kw) as r:
            return r.status, await _body(r)

    async def post(self, path: str, json: Any = None, **kw: Any) -> tuple[int, Any]:
        async with self.http.post(self.url + path, json=json, **kw) as r:
            return r.status, await _body(r)

    async def request(self, method: str, path: str, **kw: Any) -> tuple[int, Any, dict[str, str]]:
        async with self.http.request(method, self.url + path, **kw) as r:
            return r.status, await _body(r), dict(r.headers)


async def _body(r: aiohttp.ClientResponse) -> Any:
    text = await r.text()
    try:
        import json

        return json.loads(text)
    except ValueError:
        return text


@asynccontextmanager
async def running_api(
    settings: Settings, background: list[tuple[str, Callable[[Deps], Any]]] | None = None
) -> AsyncIterator[Api]:
    """The API app with real PostgreSQL (and NATS when configured) on 127.0.0.1:<NOETL_PORT>."""
    async with AsyncExitStack() as stack:
        deps = await build_deps(settings, stack)
        app = build_app(deps)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, "127.0.0.1", settings.server.port)
        await site.start()
        bg = Background()
        for name, factory in background or []:
            bg.start(name, lambda f=factory: f(deps))  # type: ignore[misc]
        stack.push_async_callback(bg.stop)
        http = aiohttp.ClientSession()
        stack.push_async_callback(http.close)
        yield Api(f"http://127.0.0.1:{settings.server.port}", deps, http)
