"""Catalog routes (server-contract §7)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from app.services import catalog
from handlers.http.common import json_response, parse_body
from handlers.http.internal_auth import internal
from handlers.http.keys import deps_of

routes = web.RouteTableDef()


class Register(BaseModel):
    model_config = ConfigDict(extra="ignore")
    content: str = Field(min_length=1)
    resource_type: str | None = "Playbook"


class Batch(BaseModel):
    model_config = ConfigDict(extra="ignore")
    items: list[dict[str, Any]] = Field(max_length=1000)


class ListReq(BaseModel):
    model_config = ConfigDict(extra="ignore")
    resource_type: str | None = None
    path: str | None = None
    include_archived: bool = False


class ResourceReq(BaseModel):
    model_config = ConfigDict(extra="ignore")
    catalog_id: int | None = None
    path: str | None = None
    version: int | str | None = None


class DeleteReq(BaseModel):
    model_config = ConfigDict(extra="ignore")
    path: str = Field(min_length=1)
    version: int | None = None


@routes.post("/api/catalog/register")
async def post_register(request: web.Request) -> web.Response:
    body = await parse_body(request, Register)
    return json_response(await catalog.register(deps_of(request), body.content, body.resource_type))


@routes.post("/api/catalog/register/batch")
async def post_register_batch(request: web.Request) -> web.Response:
    body = await parse_body(request, Batch, limit=64 * 1024 * 1024)
    return json_response(await catalog.register_batch(deps_of(request), body.items))


@routes.post("/api/catalog/list")
async def post_list(request: web.Request) -> web.Response:
    body = await parse_body(request, ListReq, required=False)
    return json_response(
        await catalog.list_entries(deps_of(request), body.resource_type, body.path, body.include_archived)
    )


@routes.post("/api/catalog/resource")
async def post_resource(request: web.Request) -> web.Response:
    body = await parse_body(request, ResourceReq)
    return json_response(await catalog.resource(deps_of(request), body.catalog_id, body.path, body.version))


@routes.post("/api/catalog/delete")
@internal
async def post_delete(request: web.Request) -> web.Response:
    body = await parse_body(request, DeleteReq)
    return json_response(await catalog.delete(deps_of(request), body.path, body.version))


@routes.post("/api/catalog/restore")
@internal
async def post_restore(request: web.Request) -> web.Response:
    body = await parse_body(request, DeleteReq)
    return json_response(await catalog.restore(deps_of(request), body.path, body.version))
