"""Keychain cache API (secrets.md §3.3) used by the NoETL Python worker and operators."""

from __future__ import annotations

from aiohttp import web

from app.errors import ValidationFailed
from app.services import keychain
from app.services.keychain import SCOPES, KeychainSetIn
from handlers.http.common import int_param, json_response, opt_int_param, parse_body
from handlers.http.keys import deps_of, wallet_of

routes = web.RouteTableDef()


def _catalog_id(request: web.Request) -> int:
    return int_param(request.match_info["catalog_id"], "catalog_id")


def _scope(request: web.Request) -> str:
    scope = request.query.get("scope_type", "global")
    if scope not in SCOPES:
        raise ValidationFailed(f"invalid scope_type '{scope}' (expected local, shared or global)")
    return scope


# Registered before /{catalog_id}/{keychain_name}, which would otherwise match "catalog/<id>".
@routes.get("/api/keychain/catalog/{catalog_id}")
async def list_keychain(request: web.Request) -> web.Response:
    return json_response(await keychain.list_entries(deps_of(request).pool, _catalog_id(request)))


@routes.get("/api/keychain/{catalog_id}/{keychain_name}")
async def get_keychain(request: web.Request) -> web.Response:
    catalog_id, scope = _catalog_id(request), _scope(request)
    execution_id = opt_int_param(request, "execution_id")
    cipher = wallet_of(request).cipher()
    name = request.match_info["keychain_name"]
    return json_response(
        await keychain.get_entry(deps_of(request).pool, cipher, catalog_id, name, scope, execution_id)
    )


@routes.post("/api/keychain/{catalog_id}/{keychain_name}")
async def set_keychain(request: web.Request) -> web.Response:
    catalog_id = _catalog_id(request)
    execution_id = opt_int_param(request, "execution_id")
    body = await parse_body(request, KeychainSetIn)
    cipher = wallet_of(request).cipher()
    name = request.match_info["keychain_name"]
    return json_response(
        await keychain.set_entry(deps_of(request).pool, cipher, catalog_id, name, body, execution_id)
    )


@routes.delete("/api/keychain/{catalog_id}/{keychain_name}")
async def delete_keychain(request: web.Request) -> web.Response:
    catalog_id, scope = _catalog_id(request), _scope(request)
    execution_id = opt_int_param(request, "execution_id")
    name = request.match_info["keychain_name"]
    return json_response(
        await keychain.delete_entry(deps_of(request).pool, catalog_id, name, scope, execution_id)
    )
