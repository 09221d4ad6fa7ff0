"""Shared gateway transport pieces: the Gateway key, JSON errors, CORS, body parsing, client address."""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from aiohttp import web

from app.errors import NoetlError
from app.gateway.core import Gateway
from app.gateway.sessions import Session, extract_token

log = logging.getLogger(__name__)

GATEWAY = web.AppKey("gateway", Gateway)
SESSION = web.RequestKey("gw_session", Session)
TOKEN = web.RequestKey("gw_token", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ALLOW_METHODS = "GET,POST,PUT,DELETE,PATCH,OPTIONS"
ALLOW_HEADERS = "content-type,authorization,x-session-id,x-session-token,x-user-id,x-request-id"
VARY = "origin, access-control-request-method, access-control-request-headers"


def gw_of(request: web.Request) -> Gateway:
    """The process's Gateway."""
    return request.app[GATEWAY]


def error(message: str, status: int, headers: dict[str, str] | None = None) -> web.Response:
    """JSON {"error": message}."""
    return web.json_response({"error": message}, status=status, headers=headers)


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every OPTIONS here, before routing and auth; decorate every response (§2.4)."""
    gw = gw_of(request)
    if request.method == "OPTIONS":
        resp: web.StreamResponse = web.Response(status=200)
        resp.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
        resp.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
    else:
        try:
            resp = await handler(request)
        except web.HTTPException as exc:
            resp = exc
    if not resp.prepared:
        origin = request.headers.get("Origin")
        if origin and origin in gw.settings.cors_origins:
            resp.headers["Access-Control-Allow-Origin"] = origin
        if gw.settings.cors_allow_credentials:
            resp.headers["Access-Control-Allow-Credentials"] = "true"
        resp.headers["Vary"] = VARY
    return resp


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Project errors become JSON {"error": ...} with their status; unknown ones a bare 500."""
    try:
        return await handler(request)
    except NoetlError as exc:
        headers = {"Retry-After": str(int(exc.retry_after))} if exc.retry_after else None
        return error(exc.message, exc.status, headers)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("gateway request failed", extra={"path": request.path})
        return error("internal error", 500)


async def json_body(
    request: web.Request, required: tuple[tuple[str, type | tuple[type, ...]], ...]
) -> dict[str, Any]:
    """The JSON object body: 415 without JSON content type, 400 malformed, 422 missing/mistyped fields."""
    if request.content_type != "application/json":
        raise _status("Content-Type must be application/json", 415)
    try:
        data = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        raise _status("malformed JSON body", 400) from None
    if not isinstance(data, dict):
        raise _status("body must be a JSON object", 422)
    for name, typ in required:
        value = data.get(name)
        if value is None or not isinstance(value, typ) or (isinstance(value, bool) and typ is not bool):
            raise _status(f"field {name!r} is missing or has the wrong type", 422)
    return data


def _status(message: str, status: int) -> NoetlError:
    err = NoetlError(message)
    err.status = status
    return err


def client_address(request: web.Request) -> str:
    """The TCP peer, or the right-most untrusted X-Forwarded-For hop behind a trusted proxy (§4.7)."""
    peer = request.remote or "127.0.0.1"
    nets = []
    for cidr in gw_of(request).settings.trusted_proxies.split(","):
        if cidr.strip():
            try:
                nets.append(ipaddress.ip_network(cidr.strip(), strict=False))
            except ValueError:
                continue

    def trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in n for n in nets)

    if nets and trusted(peer):
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
        for hop in reversed(hops):
            if not trusted(hop):
                try:
                    return str(ipaddress.ip_address(hop))
                except ValueError:
                    break
    return peer


def authenticated(handler: Handler) -> Handler:
    """The session middleware of §4.5 for /graphql (POST) and /noetl/*."""

    @wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        gw = gw_of(request)
        token = extract_token(request.headers)
        if gw.settings.auth_bypass:
            gw.metrics.session_check.labels(outcome="bypass").inc()
            bypass = await gw.resolve(token)
            assert bypass is not None
            request[SESSION] = bypass
            request[TOKEN] = token or ""
            return await handler(request)
        if token is None:
            gw.metrics.session_check.labels(outcome="missing_token").inc()
            return web.Response(status=401, text="Missing authentication token")
        try:
            session: Session | None = await gw.resolve(token)
        except NoetlError:
            gw.metrics.session_check.labels(outcome="validation_error").inc()
            raise
        if session is None:
            gw.metrics.session_check.labels(outcome="invalid_or_expired").inc()
            return web.Response(status=401, text="Invalid or expired session")
        gw.metrics.session_check.labels(outcome="ok").inc()
        request[SESSION] = session
        request[TOKEN] = token
        return await handler(request)

    return wrapped


def rate_limited(request: web.Request, limiter: Any, route: str) -> web.Response | None:
    """A 429 when the client's bucket is empty."""
    if limiter.allow(client_address(request)):
        return None
    gw_of(request).metrics.rate_limited.labels(route=route).inc()
    return error("rate limit exceeded", 429, {"Retry-After": str(limiter.retry_after())})
