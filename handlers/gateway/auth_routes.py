"""POST /api/auth/login, /api/auth/validate, /api/auth/check-access (gateway.md §4.2–§4.4)."""

from __future__ import annotations

from aiohttp import web

from app.errors import NoetlError
from handlers.gateway.common import client_address, gw_of, json_body, rate_limited

routes = web.RouteTableDef()


@routes.post("/api/auth/login")
async def post_login(request: web.Request) -> web.Response:
    gw = gw_of(request)
    limited = rate_limited(request, gw.login_limiter, "login")
    if limited is not None:
        return limited
    body = await json_body(request, (("auth0_token", str),))
    hours = body.get("session_duration_hours", 8)
    if not isinstance(hours, int) or isinstance(hours, bool) or hours < 1:
        err = NoetlError("session_duration_hours must be an integer >= 1")
        err.status = 422
        raise err
    out = await gw.login(body, client_address(request), request.headers.get("User-Agent"))
    return web.json_response(out)


@routes.post("/api/auth/validate")
async def post_validate(request: web.Request) -> web.Response:
    gw = gw_of(request)
    limited = rate_limited(request, gw.auth_limiter, "auth")
    if limited is not None:
        return limited
    body = await json_body(request, (("session_token", str),))
    session = await gw.resolve(body["session_token"])
    if session is None:
        return web.json_response(
            {"valid": False, "user": None, "expires_at": None, "message": "Session is invalid or expired"}
        )
    return web.json_response(
        {"valid": True, "user": session.user, "expires_at": session.expires_at, "message": "Session is valid"}
    )


@routes.post("/api/auth/check-access")
async def post_check_access(request: web.Request) -> web.Response:
    gw = gw_of(request)
    limited = rate_limited(request, gw.auth_limiter, "auth")
    if limited is not None:
        return limited
    body = await json_body(
        request, (("session_token", str), ("playbook_path", str), ("permission_type", str))
    )
    out = await gw.check_access(body["session_token"], body["playbook_path"], body["permission_type"])
    return web.json_response(out)
