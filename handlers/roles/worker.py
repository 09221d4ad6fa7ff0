"""`noetl-control-plane worker`: one worker process (claims over HTTP, runs tools, posts events)."""

from __future__ import annotations

import argparse
import asyncio

from app.config import Settings
from app.worker.runtime import run_worker
from handlers.roles.lifecycle import stop_event


async def _serve(settings: Settings) -> None:
    await run_worker(settings, stop_event())


def main(settings: Settings, args: argparse.Namespace) -> int:
    """Entry point of the role."""
    if not settings.nats.enabled:
        raise SystemExit("noetl-control-plane worker: NATS_URL is required")
    asyncio.run(_serve(settings))
    return 0
