"""Server auth routes the gateway calls with the internal token (gateway.md §6.1)."""

from __future__ import annotations

from aiohttp import web

from app.gateway.auth0 import Auth0Verifier
from app.services import auth
from handlers.http.common import json_response, parse_body
from handlers.http.internal_auth import internal
from handlers.http.keys import deps_of

routes = web.RouteTableDef()

_VERIFIER = "auth0_verifier"


def _verifier(request: web.Request) -> Auth0Verifier:
    deps = deps_of(request)
    verifier = deps.extras.get(_VERIFIER)
    if verifier is None:
        verifier = deps.extras[_VERIFIER] = Auth0Verifier(deps.settings.gateway)
    return verifier  # type: ignore[no-any-return]


@routes.post("/api/auth/login")
@internal
async def post_login(request: web.Request) -> web.Response:
    body = await parse_body(request, auth.LoginIn)
    deps = deps_of(request)
    out = await auth.login(deps.pool, _verifier(request), body, deps.settings.gateway.session_max_hours)
    return json_response(out)


@routes.post("/api/auth/session/validate")
@internal
async def post_validate(request: web.Request) -> web.Response:
    body = await parse_body(request, auth.ValidateIn)
    return json_response(await auth.validate(deps_of(request).pool, body.session_token))


@routes.post("/api/auth/check-playbook-access")
@internal
async def post_check_access(request: web.Request) -> web.Response:
    body = await parse_body(request, auth.AccessIn)
    return json_response(await auth.check_access(deps_of(request).pool, body))
