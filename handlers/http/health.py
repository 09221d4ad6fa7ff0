"""Probes: /health, /healthz, /readyz, /api/health and /metrics (server-contract §17)."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app import __version__
from app.bootstrap import Deps
from handlers.http.common import json_response
from handlers.http.keys import deps_of

routes = web.RouteTableDef()


async def _check(deps: Deps) -> tuple[str, str, list[str]]:
    problems: list[str] = []
    try:
        async with asyncio.timeout(2):
            await deps.pool.fetchval("SELECT 1")
        database = "connected"
    except Exception:
        database = "disconnected"
        problems.append("database: not reachable")
    if not deps.settings.nats.enabled:
        nats = "not_configured"
    else:
        reason = await deps.bus.check() if deps.bus else "not started"
        nats = "connected" if reason is None else "disconnected"
        if reason is not None:
            problems.append(f"nats: {reason}")
    return database, nats, problems


@routes.get("/health")
@routes.get("/healthz")
async def get_health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@routes.get("/readyz")
async def get_readyz(request: web.Request) -> web.Response:
    deps = deps_of(request)
    database, nats, problems = await _check(deps)
    body: dict[str, object] = {
        "status": "ready" if not problems else "not_ready",
        "database": database,
        "nats": nats,
    }
    if problems:
        body.update(
            {
                "error": "; ".join(problems),
                "detail": {"code": "not_ready", "failed": problems},
                "status_code": 503,
            }
        )
        return json_response(body, status=503, headers={"Retry-After": "5"})
    if not deps.settings.nats.enabled:
        body["mode"] = "degraded"
    return json_response(body)


@routes.get("/api/health")
async def get_api_health(request: web.Request) -> web.Response:
    deps = deps_of(request)
    database, nats, problems = await _check(deps)
    body = {
        "status": "ok" if not problems else "unhealthy",
        "database": database,
        "nats": nats,
        "uptime_seconds": round(time.monotonic() - deps.started_at, 3),
        "version": __version__,
    }
    return json_response(
        body, status=200 if not problems else 503, headers=None if not problems else {"Retry-After": "5"}
    )


async def get_metrics(request: web.Request) -> web.Response:
    deps = deps_of(request)
    data = generate_latest(deps.metrics.registry)
    return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_metrics_route(app: web.Application) -> None:
    """Registered only when NOETL_DISABLE_METRICS is false."""
    app.router.add_get("/metrics", get_metrics)
