"""Access log and HTTP metrics by route template; probe requests are not logged."""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web

from app.logging import PROBE_PATHS
from handlers.http.keys import DEPS

log = logging.getLogger("noetl.access")

_WRITE = {"POST", "PUT", "PATCH", "DELETE"}

# Endpoint names the secrets spec fixes (secrets.md §8); other writes get a name derived from the route.
_ENDPOINTS = {
    ("POST", "/api/credentials"): "credentials_upsert",
    ("DELETE", "/api/credentials/{identifier}"): "credentials_delete",
    ("POST", "/api/keychain/{catalog_id}/{keychain_name}"): "keychain_set",
    ("DELETE", "/api/keychain/{catalog_id}/{keychain_name}"): "keychain_delete",
}


def write_endpoint(method: str, route: str) -> str:
    """A low-cardinality endpoint label for a mutating route."""
    known = _ENDPOINTS.get((method, route))
    if known:
        return known
    parts = [p for p in route.removeprefix("/api/").split("/") if p and not p.startswith("{")]
    return "_".join(parts).replace("-", "_") or "root"


def route_template(request: web.Request) -> str:
    """The matched route's template (never the concrete path: ids are not labels)."""
    info = request.match_info
    route = getattr(info, "route", None)
    resource = getattr(route, "resource", None)
    canonical = getattr(resource, "canonical", None)
    return str(canonical) if canonical else "unmatched"


@web.middleware
async def observe_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Count and time every request; log non-probe requests."""
    start = time.perf_counter()
    status = 500
    try:
        response: web.StreamResponse = await handler(request)
        status = response.status
        return response
    finally:
        elapsed = time.perf_counter() - start
        deps = request.app.get(DEPS)
        route = route_template(request)
        if deps is not None:
            m = deps.metrics
            m.http_requests.labels(request.method, route, str(status)).inc()
            m.http_duration.labels(request.method, route).observe(elapsed)
            if request.method in _WRITE and route.startswith("/api/"):
                endpoint = write_endpoint(request.method, route)
                m.write_requests.labels(endpoint, "ok" if status < 400 else "error").inc()
                m.write_duration.labels(endpoint).observe(elapsed)
        if request.path not in PROBE_PATHS:
            log.info(
                "request",
                extra={
                    "method": request.method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
