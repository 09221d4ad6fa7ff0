"""GET /api/internal/ingress/{listener}: listener config for the gateway's push ingress (gateway.md §11.2)."""

from __future__ import annotations

from aiohttp import web

from app.services import ingress_config
from handlers.http.common import json_response
from handlers.http.internal_auth import internal
from handlers.http.keys import deps_of

routes = web.RouteTableDef()


@routes.get("/api/internal/ingress/{listener}")
@internal
async def get_ingress_config(request: web.Request) -> web.Response:
    # The body carries a decrypted secret: it is never logged (the access log has no bodies).
    out = await ingress_config.listener_config(deps_of(request), request.match_info["listener"])
    return json_response(out)
