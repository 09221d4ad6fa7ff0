"""Command claim routes and event ingestion (server-contract §5, §6)."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from app.errors import ValidationFailed
from app.services import commands, event_batches, events
from handlers.http.common import int_param, json_response, parse_body, parse_model, read_json_body
from handlers.http.keys import deps_of

routes = web.RouteTableDef()


class ClaimReq(BaseModel):
    model_config = ConfigDict(extra="ignore")
    worker_id: str = Field(min_length=1)
    locality: dict[str, Any] | None = None


class EventIn(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    execution_id: int
    step: str | None = Field(default=None, validation_alias=AliasChoices("step", "node_name"))
    event_type: str = Field(min_length=1, validation_alias=AliasChoices("event_type", "name"))
    payload: Any = Field(default=None, validation_alias=AliasChoices("payload", "context"))
    status: str | None = None
    event_id: int | str | None = None
    created_at: str | None = None
    worker_id: str | None = None
    meta: dict[str, Any] | None = None
    actionable: bool | None = None
    informative: bool = True
    result_kind: str | None = None
    result_uri: str | None = None
    event_ids: list[Any] | None = None


class BatchItem(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    step: str | None = Field(default=None, validation_alias=AliasChoices("step", "node_name"))
    event_type: str = Field(min_length=1, validation_alias=AliasChoices("event_type", "name"))
    payload: Any = Field(default=None, validation_alias=AliasChoices("payload", "context"))
    status: str | None = None
    event_id: int | str | None = None
    created_at: str | None = None
    worker_id: str | None = None
    meta: dict[str, Any] | None = None
    actionable: bool = False
    informative: bool = True


class BatchReq(BaseModel):
    model_config = ConfigDict(extra="ignore")
    execution_id: int
    worker_id: str | None = None
    catalog_id: int | None = None
    events: list[BatchItem] = Field(max_length=256)


@routes.get("/api/commands/{event_id}")
async def get_command(request: web.Request) -> web.Response:
    event_id = int_param(request.match_info["event_id"], "event_id")
    return json_response(await commands.get_command(deps_of(request), event_id))


@routes.post("/api/commands/{event_id}/claim")
async def post_claim(request: web.Request) -> web.Response:
    event_id = int_param(request.match_info["event_id"], "event_id")
    body = await parse_body(request, ClaimReq)
    return json_response(await commands.claim(deps_of(request), event_id, body.worker_id, body.locality))


@routes.post("/api/events")
async def post_event(request: web.Request) -> web.Response:
    raw = await read_json_body(request)
    ev = parse_model(raw, EventIn)
    data = ev.model_dump()
    if data["actionable"] is None:
        data.pop("actionable")
    ids, generated = await events.ingest(deps_of(request), ev.execution_id, [data], worker_id=ev.worker_id)
    return json_response({"status": "ok", "event_id": ids[0], "commands_generated": generated})


@routes.post("/api/events/batch")
async def post_event_batch(request: web.Request) -> web.Response:
    deps = deps_of(request)
    raw = await read_json_body(request)
    if isinstance(raw, dict) and isinstance(raw.get("events"), list) and len(raw["events"]) > 256:
        raise ValidationFailed(f"a batch holds at most 256 events (got {len(raw['events'])})")
    body = parse_model(raw, BatchReq)
    key = request.headers.get("Idempotency-Key") or request.headers.get("X-Idempotency-Key")
    if key:
        dup = await event_batches.find_batch(deps, body.execution_id, key)
        if dup is not None:
            return json_response(dup)
    request_id = str(uuid.uuid4())
    extra = {"batch_request_id": request_id}
    items = [i.model_dump() for i in body.events]
    if key and items:
        items[0]["meta"] = {**(items[0].get("meta") or {}), "idempotency_key": key}
    ids, generated = await events.ingest(
        deps,
        body.execution_id,
        items,
        worker_id=body.worker_id,
        actionable_default=False,
        catalog_hint=body.catalog_id,
        extra_meta=extra,
    )
    return json_response(
        {
            "status": "ok",
            "request_id": request_id,
            "event_ids": ids,
            "commands_generated": generated,
            "duplicate": False,
            "idempotency_key": key,
        }
    )
