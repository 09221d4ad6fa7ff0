"""The /api/internal/* gate (server-contract §11.1): 401 when unconfigured, 403 for any client failure."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from functools import wraps

from aiohttp import web

from app.errors import Forbidden, Unauthorized
from handlers.http.keys import deps_of

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def check_internal_token(request: web.Request) -> None:
    """Raise unless the request carries the configured bearer token (constant-time compare)."""
    expected = deps_of(request).settings.server.internal_api_token.strip()
    if not expected:
        raise Unauthorized("internal API token not configured on this server")
    header = request.headers.get("Authorization")
    if header is None:
        raise Forbidden("missing Authorization header for an internal route")
    if not header.isascii():
        raise Forbidden("malformed Authorization header")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Forbidden("malformed Authorization header: expected 'Bearer <token>'")
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise Forbidden("invalid internal API token")


def internal(handler: Handler) -> Handler:
    """Decorate a route so the gate runs before any other processing."""

    @wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        check_internal_token(request)
        return await handler(request)

    return wrapped


@web.middleware
async def internal_gate_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Gate every /api/internal/* path, including ones added later, before routing logic runs."""
    if request.path.startswith("/api/internal/") or request.path == "/api/internal":
        check_internal_token(request)
    return await handler(request)
