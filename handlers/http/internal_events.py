"""/api/internal/events/project (server-contract §11.3); gated by the internal token middleware."""

from __future__ import annotations

from aiohttp import web

from app.errors import ValidationFailed
from app.services import project
from handlers.http.common import json_response, read_json_body
from handlers.http.keys import deps_of

routes = web.RouteTableDef()


@routes.post("/api/internal/events/project")
async def post_project(request: web.Request) -> web.Response:
    body = await read_json_body(request)
    events = body.get("events") if isinstance(body, dict) else None
    if not isinstance(events, list) or not events:
        raise ValidationFailed("events must be a non-empty list")
    return json_response(await project.project(deps_of(request), events))
