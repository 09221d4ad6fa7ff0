"""Credential store and sealed delivery routes (secrets.md §3.1, §3.2): thin handlers over the services."""

from __future__ import annotations

from aiohttp import web

from app.errors import BadRequest
from app.secrets.response import response_for
from app.services import credentials
from app.services.credentials import CredentialIn
from handlers.http.common import bool_param, json_response, json_text_response, opt_int_param, parse_body
from handlers.http.keys import deps_of, wallet_of

routes = web.RouteTableDef()


@routes.post("/api/credentials")
async def post_credential(request: web.Request) -> web.Response:
    body = await parse_body(request, CredentialIn)
    deps = deps_of(request)
    wallet = wallet_of(request)
    text = await credentials.upsert(deps.pool, wallet.cipher(), deps.ids.next_id(), body)
    return json_text_response(text)


@routes.get("/api/credentials")
async def list_credentials(request: web.Request) -> web.Response:
    q = request.query
    return json_text_response(await credentials.list_json(deps_of(request).pool, q.get("type"), q.get("q")))


@routes.get("/api/credentials/{identifier}/sealed")
async def get_sealed(request: web.Request) -> web.Response:
    identifier = request.match_info["identifier"]
    worker_id = request.query.get("worker_id")
    if not worker_id:
        raise BadRequest("worker_id query parameter is required")
    execution_id = opt_int_param(request, "execution_id")
    parent = opt_int_param(request, "parent_execution_id")
    envelope = await wallet_of(request).get_sealed(identifier, worker_id, execution_id, parent)
    return json_text_response(envelope)


@routes.get("/api/credentials/{identifier}")
async def get_credential(request: web.Request) -> web.Response:
    identifier = request.match_info["identifier"]
    include_data = bool_param(request, "include_data")
    execution_id = opt_int_param(request, "execution_id")
    parent = opt_int_param(request, "parent_execution_id")
    # catalog_id is accepted and unused (§3.1).
    if not include_data:
        return json_text_response(await credentials.get_json(deps_of(request).pool, identifier))
    resolved = await wallet_of(request).get_with_data(identifier, execution_id, parent)
    return json_text_response(response_for(resolved, identifier))


@routes.delete("/api/credentials/{identifier}")
async def delete_credential(request: web.Request) -> web.Response:
    return json_response(await credentials.delete(deps_of(request).pool, request.match_info["identifier"]))
