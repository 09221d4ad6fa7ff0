"""/api/internal/outbox/* (server-contract §11.2): the outbox over HTTP for system-pool playbooks and KEDA."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field, field_validator

from app import outbox
from handlers.http.common import json_response, parse_body, read_json_body
from handlers.http.keys import deps_of

routes = web.RouteTableDef()


class MarkPublished(BaseModel):
    outbox_ids: list[int] = Field(min_length=1)


class MarkFailed(BaseModel):
    outbox_id: int
    error: str = Field(min_length=1)
    attempts: int = Field(default=1, ge=1)
    max_delay_seconds: int = Field(default=300, ge=1)

    @field_validator("error")
    @classmethod
    def _non_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("error must not be blank")
        return v


def _limit(raw: object, default: int = 100) -> int:
    try:
        n = int(str(raw))
    except (TypeError, ValueError):
        return default
    return int(max(1, min(1000, n)))


@routes.post("/api/internal/outbox/claim")
async def post_outbox_claim(request: web.Request) -> web.Response:
    deps = deps_of(request)
    body = await read_json_body(request, required=False) if request.can_read_body else None
    limit = _limit(request.query.get("limit"))
    if isinstance(body, dict) and "limit" in body:
        limit = _limit(body["limit"])
    kinds = [k.strip() for k in request.query.get("kind", "").split(",") if k.strip()]
    rows = await outbox.claim(deps.pool, limit, deps.settings.server.outbox_inflight_lease_seconds, kinds)
    reclaimed = sum(1 for r in rows if r.reclaimed)
    if reclaimed:
        deps.metrics.outbox_inflight_reclaimed.inc(reclaimed)
    return json_response({"rows": [r.public() for r in rows], "claimed": len(rows)})


@routes.post("/api/internal/outbox/mark-published")
async def post_outbox_mark_published(request: web.Request) -> web.Response:
    deps = deps_of(request)
    body = await parse_body(request, MarkPublished)
    marked = await outbox.mark_published(deps.pool, body.outbox_ids)
    return json_response({"marked": marked})


@routes.post("/api/internal/outbox/mark-failed")
async def post_outbox_mark_failed(request: web.Request) -> web.Response:
    deps = deps_of(request)
    body = await parse_body(request, MarkFailed)
    delay = await outbox.mark_failed(
        deps.pool, body.outbox_id, body.error, body.attempts, body.max_delay_seconds
    )
    return json_response({"marked": True, "available_at_in": delay})


@routes.get("/api/internal/outbox/pending-count")
async def get_outbox_pending_count(request: web.Request) -> web.Response:
    deps = deps_of(request)
    s = deps.settings.server
    n = await outbox.pending_count(deps.pool, s.outbox_inflight_lease_seconds, s.outbox_pending_count_cap)
    deps.metrics.outbox_pending.set(n)
    return json_response({"pending": n})
