"""`noetl-control-plane serve`: the API on NOETL_HOST:NOETL_PORT plus the server's background loops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AsyncExitStack

from aiohttp import web

from app import tls
from app.bootstrap import Deps, build_deps
from app.config import Settings
from app.db.migrate import migrate
from app.loops import SERVER_LOOPS
from handlers.http.app import build_app
from handlers.roles.lifecycle import Background, stop_event

log = logging.getLogger(__name__)

BACKGROUND: list[tuple[str, Callable[[Deps], object]]] = list(SERVER_LOOPS)


async def run_server(
    settings: Settings,
    *,
    run_migrations: bool = True,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or `stop`), then drain and close every resource."""
    s = settings.server
    if run_migrations and s.migrate_on_start:
        applied = await migrate(settings.db.dsn, s.schema_name)
        if applied:
            log.info("migrations applied", extra={"migrations": applied})
    if not s.public_server_url:
        log.warning(
            "NOETL_PUBLIC_SERVER_URL is not set: notifications carry %s, which breaks claims "
            "from other hosts or pods",
            s.server_url,
        )
    stop = stop or stop_event()
    async with AsyncExitStack() as stack:
        deps = await build_deps(settings, stack)
        app = build_app(deps)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, s.host, s.port, ssl_context=tls.server_ssl_context(s), shutdown_timeout=10)
        await site.start()
        background = Background()
        for name, factory in BACKGROUND:
            background.start(name, lambda f=factory: f(deps))  # type: ignore[misc]
        stack.push_async_callback(background.stop)
        deps.metrics.up.set(1)
        scheme = "https" if s.tls_cert else "http"
        url = f"{scheme}://{s.host}:{s.port}"
        log.info("serving", extra={"url": url, "tls": tls.mode(s), "server_name": s.server_name})
        if on_ready:
            on_ready(url)
        await stop.wait()
        log.info("shutting down")
        deps.metrics.up.set(0)
