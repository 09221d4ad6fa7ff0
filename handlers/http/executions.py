"""Execution routes (server-contract §4)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from app.errors import ValidationFailed
from app.services import cancel as cancel_svc
from app.services import execute, executions
from handlers.http.common import int_param, json_response, parse_body, read_json_body
from handlers.http.keys import deps_of

routes = web.RouteTableDef()


class CancelReq(BaseModel):
    model_config = ConfigDict(extra="ignore")
    reason: str | None = None
    cascade: bool = True


class CleanupReq(BaseModel):
    model_config = ConfigDict(extra="ignore")
    older_than_minutes: int = Field(default=5, ge=1)
    dry_run: bool = False


async def _object(request: web.Request, required: bool = True) -> dict[str, Any]:
    body = await read_json_body(request, required=required)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ValidationFailed("request body must be a JSON object")
    return body


def _eid(request: web.Request) -> int:
    return int_param(request.match_info["execution_id"], "execution_id")


@routes.post("/api/execute")
async def post_execute(request: web.Request) -> web.Response:
    return json_response(await execute.start_execution(deps_of(request), await _object(request)))


@routes.get("/api/executions")
async def get_executions(request: web.Request) -> web.Response:
    return json_response(await executions.list_executions(deps_of(request), dict(request.query)))


@routes.post("/api/executions/cleanup")
async def post_cleanup(request: web.Request) -> web.Response:
    body = await parse_body(request, CleanupReq, required=False)
    return json_response(await cancel_svc.cleanup(deps_of(request), body.older_than_minutes, body.dry_run))


@routes.get("/api/executions/{execution_id}")
async def get_execution(request: web.Request) -> web.Response:
    return json_response(await executions.detail(deps_of(request), _eid(request), dict(request.query)))


@routes.get("/api/executions/{execution_id}/status")
async def get_status(request: web.Request) -> web.Response:
    full = request.query.get("full", "").lower() in ("1", "true", "yes")
    return json_response(await executions.status(deps_of(request), _eid(request), full))


@routes.get("/api/executions/{execution_id}/events")
async def get_events(request: web.Request) -> web.Response:
    deps = deps_of(request)
    eid = _eid(request)
    st = await executions.status(deps, eid)
    events, pagination = await executions.events_page(deps, eid, dict(request.query))
    path = await deps.pool.fetchval("SELECT path FROM execution WHERE execution_id = $1", eid)
    return json_response(
        {
            "execution_id": str(eid),
            "path": path,
            "status": st["status"],
            "events": events,
            "pagination": pagination,
        }
    )


@routes.post("/api/executions/{execution_id}/cancel")
async def post_cancel(request: web.Request) -> web.Response:
    body = await parse_body(request, CancelReq, required=False)
    return json_response(await cancel_svc.cancel(deps_of(request), _eid(request), body.reason, body.cascade))


@routes.get("/api/executions/{execution_id}/cancellation-check")
async def get_cancellation_check(request: web.Request) -> web.Response:
    return json_response(await executions.cancellation_check(deps_of(request), _eid(request)))


@routes.post("/api/executions/{execution_id}/finalize")
async def post_finalize(request: web.Request) -> web.Response:
    return json_response(
        await cancel_svc.finalize(deps_of(request), _eid(request), await _object(request, required=False))
    )


@routes.post("/api/executions/{execution_id}/rerun")
async def post_rerun(request: web.Request) -> web.Response:
    return json_response(
        await execute.rerun(deps_of(request), _eid(request), await _object(request, required=False))
    )
