"""`noetl-control-plane consumers`: FastStream NATS consumers for the internal operations.

Outbox relay, event ingest/projection, read-model projectors, cleanup and the residency audit; each is
also reachable over HTTP under /api/internal/* on the API."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

from aiohttp import web
from faststream.nats import NatsBroker

from app.bootstrap import Deps, build_deps
from app.bus import StreamSpec, ensure_stream
from app.config import Settings
from app.services import cleanup, residency_audit
from handlers.http.health import add_metrics_route
from handlers.http.health import routes as health_routes
from handlers.http.keys import DEPS
from handlers.nats import ingest, projector, relay
from handlers.roles.lifecycle import Background, stop_event

log = logging.getLogger(__name__)

Register = Callable[[NatsBroker, Deps], None]
REGISTRARS: list[Register] = [relay.register, ingest.register, projector.register]
LOOPS: list[tuple[str, Callable[[Deps], Awaitable[None]]]] = [
    ("outbox-relay", relay.run_relay),
    ("outbox-lag", relay.lag_loop),
    ("projection-lag", projector.lag_loop),
    ("cleanup", cleanup.cleanup_loop),
    ("residency-audit", residency_audit.residency_loop),
]


async def run_consumers(
    settings: Settings, stop: asyncio.Event | None = None, port: int | None = None
) -> None:
    """Run every consumer until SIGTERM/SIGINT (or `stop`); a small HTTP port serves probes and metrics."""
    if not settings.nats.enabled:
        raise SystemExit("noetl-control-plane consumers: NATS_URL is required")
    stop = stop or stop_event()
    async with AsyncExitStack() as stack:
        deps = await build_deps(settings, stack)
        n = settings.nats
        if deps.bus is not None and deps.bus.js is not None:
            await ensure_stream(
                deps.bus.js,
                StreamSpec(n.ingest_stream, (f"{n.ingest_subject}.>",), n.event_max_age_seconds, 120.0),
            )
        broker = NatsBroker(**settings.nats.connect_options())  # type: ignore[arg-type]
        for register in REGISTRARS:
            register(broker, deps)
        await broker.start()
        stack.push_async_callback(broker.stop)
        background = Background()
        for name, loop in LOOPS:
            background.start(name, lambda f=loop: f(deps))  # type: ignore[misc]
        stack.push_async_callback(background.stop)
        if port:
            app = web.Application()
            app[DEPS] = deps
            app.add_routes(health_routes)
            add_metrics_route(app)
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            await web.TCPSite(runner, settings.server.host, port).start()
        log.info("consumers running", extra={"consumers": [r.__module__ for r in REGISTRARS]})
        await stop.wait()
        log.info("consumers stopping")


def main(settings: Settings, args: argparse.Namespace) -> int:
    """Entry point of the role."""
    port = int(getattr(args, "port", 0) or 0) or None
    asyncio.run(run_consumers(settings, port=port))
    return 0
