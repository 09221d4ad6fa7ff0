"""/api/internal/cleanup/purge (server-contract §11.6) and /api/internal/residency/audit."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from app.services import cleanup, residency_audit
from handlers.http.common import json_response, parse_body
from handlers.http.keys import deps_of

routes = web.RouteTableDef()


class PurgeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command_retention_days: float | None = Field(default=None, ge=0)
    runtime_stale_minutes: float | None = Field(default=None, ge=0)
    event_retention_days: float | None = Field(default=None, ge=0)
    outbox_retention_days: float | None = Field(default=None, ge=0)
    dry_run: bool = False


class AuditBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    record: bool = True
    window_seconds: float | None = Field(default=None, gt=0, le=30 * 86400)


@routes.post("/api/internal/cleanup/purge")
async def post_cleanup_purge(request: web.Request) -> web.Response:
    deps = deps_of(request)
    body = await parse_body(request, PurgeBody, required=False)
    retention = cleanup.retention_from(deps, **body.model_dump())
    return json_response(await cleanup.run(deps, retention, "http"))


@routes.post("/api/internal/residency/audit")
async def post_residency_audit(request: web.Request) -> web.Response:
    deps = deps_of(request)
    body = await parse_body(request, AuditBody, required=False)
    out = await residency_audit.run(deps, "http", record=body.record, window_seconds=body.window_seconds)
    return json_response(out)
