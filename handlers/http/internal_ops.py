"""/api/internal/cleanup/purge (server-contract §11.6), /api/internal/residency/audit and the stuck-execution
explanation read from the projections."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from app.errors import BadRequest
from app.services import cleanup, residency_audit
from handlers.http.common import json_response, parse_body
from handlers.http.keys import deps_of
from projections import stuck

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


@routes.get("/api/internal/executions/{execution_id}/stuck")
async def get_execution_stuck(request: web.Request) -> web.Response:
    deps = deps_of(request)
    raw = request.match_info["execution_id"]
    if not raw.isdigit():
        raise BadRequest(f"execution_id must be a decimal integer (got {raw!r})")
    async with deps.pool.acquire() as conn:
        out = await stuck.explain(conn, int(raw), deps.settings.ops.worker_live_seconds)
    return json_response(out)
