"""Runtime registry routes (server-contract §9.2–§9.5)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from app.errors import NotFound, ValidationFailed
from app.services import runtime
from handlers.errors import noetl_error_response
from handlers.http.common import json_response, read_json_body
from handlers.http.keys import deps_of

routes = web.RouteTableDef()


async def _object_body(request: web.Request) -> dict[str, Any]:
    body = await read_json_body(request)
    if not isinstance(body, dict):
        raise ValidationFailed("request body must be a JSON object")
    return body


@routes.post("/api/worker/pool/register")
async def post_register(request: web.Request) -> web.Response:
    deps = deps_of(request)
    return json_response(await runtime.register(deps.pool, deps.ids, await _object_body(request)))


@routes.post("/api/worker/pool/heartbeat")
async def post_heartbeat(request: web.Request) -> web.Response:
    deps = deps_of(request)
    try:
        out = await runtime.heartbeat(
            deps.pool,
            deps.ids,
            await _object_body(request),
            auto_recreate=deps.settings.server.auto_recreate_runtime,
        )
    except NotFound as exc:
        exc.retry_after = deps.settings.server.heartbeat_retry_after
        return noetl_error_response(exc)
    return json_response(out)


@routes.post("/api/worker/pool/deregister")
@routes.delete("/api/worker/pool/deregister")
async def post_deregister(request: web.Request) -> web.Response:
    deps = deps_of(request)
    return json_response(await runtime.deregister(deps.pool, await _object_body(request)))


@routes.get("/api/worker/pools")
async def get_pools(request: web.Request) -> web.Response:
    deps = deps_of(request)
    return json_response(await runtime.list_pools(deps.pool, dict(request.query)))
