"""/api/vars and the result store (server-contract §10)."""

from __future__ import annotations

from aiohttp import web

from app.services import variables
from handlers.http.common import int_param, json_response, read_json_body
from handlers.http.keys import deps_of

routes = web.RouteTableDef()
RESULT_LIMIT = 64 * 1024 * 1024


def _eid(request: web.Request) -> int:
    return int_param(request.match_info["execution_id"], "execution_id")


@routes.post("/api/vars/{execution_id}")
async def post_vars(request: web.Request) -> web.Response:
    return json_response(
        await variables.set_vars(deps_of(request), _eid(request), await read_json_body(request))
    )


@routes.get("/api/vars/{execution_id}")
async def get_vars(request: web.Request) -> web.Response:
    return json_response(await variables.get_vars(deps_of(request), _eid(request)))


@routes.delete("/api/vars/{execution_id}")
async def delete_vars(request: web.Request) -> web.Response:
    return json_response(await variables.delete_vars(deps_of(request), _eid(request)))


@routes.get("/api/vars/{execution_id}/{var_name}")
async def get_var(request: web.Request) -> web.Response:
    return json_response(
        await variables.get_var(deps_of(request), _eid(request), request.match_info["var_name"])
    )


@routes.delete("/api/vars/{execution_id}/{var_name}")
async def delete_var(request: web.Request) -> web.Response:
    return json_response(
        await variables.delete_var(deps_of(request), _eid(request), request.match_info["var_name"])
    )


@routes.put("/api/result/{execution_id}")
async def put_result(request: web.Request) -> web.Response:
    body = await read_json_body(request, limit=RESULT_LIMIT)
    return json_response(await variables.put_result(deps_of(request), _eid(request), body))


@routes.get("/api/result/resolve")
async def get_result(request: web.Request) -> web.Response:
    return json_response(await variables.resolve_result(deps_of(request), request.query.get("ref")))
