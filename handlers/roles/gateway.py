"""`noetl-control-plane gateway`: the public entry point on ROUTER_PORT (gateway.md §2.1)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web

from app.config import Settings
from app.gateway.core import Gateway
from handlers.gateway.app import build_gateway_app

log = logging.getLogger(__name__)


@asynccontextmanager
async def running_gateway(settings: Settings, host: str | None = None) -> AsyncIterator[Gateway]:
    """Open the gateway (NATS degraded when unreachable) and serve it until the block ends."""
    gs = settings.gateway
    async with aiohttp.ClientSession() as http:
        gw = Gateway(gs, settings.nats, http, settings.gateway_ingress)
        await gw.start()
        runner = web.AppRunner(build_gateway_app(gw), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, host or gs.bind, gs.port).start()
            log.info("gateway listening", extra={"bind": host or gs.bind, "port": gs.port})
            yield gw
        finally:
            await gw.close()
            await runner.cleanup()


async def _serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running_gateway(settings):
        await stop.wait()


def main(settings: Settings, args: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT."""
    _ = settings.gateway  # fail fast on bad configuration
    asyncio.run(_serve(settings))
    return 0
