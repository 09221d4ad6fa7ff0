"""Worker callbacks: /api/internal/callback/async and /api/internal/progress (gateway.md §9)."""

from __future__ import annotations

from aiohttp import web

from app.gateway.frames import notification
from app.gateway.registry import Frame
from handlers.gateway.common import gw_of, json_body

routes = web.RouteTableDef()


@routes.post("/api/internal/callback/async")
async def post_callback_async(request: web.Request) -> web.Response:
    gw = gw_of(request)
    body = await json_body(request, (("request_id", str),))
    rid = body["request_id"]
    entry = await gw.pending(rid)
    await gw.authenticate_callback(request.headers.get("Authorization"), entry, body.get("execution_id"))
    frames = gw.result_frames(rid, entry, body)
    if not await gw.deliver(str(entry.get("client_id")), frames, "async", rid):
        gw.metrics.callback_undelivered.inc()
        return web.json_response({"status": "queued", "clientDisconnected": True}, status=202)
    await gw.store.delete(rid, entry)
    return web.json_response({"status": "delivered"})


@routes.post("/api/internal/progress")
async def post_progress(request: web.Request) -> web.Response:
    gw = gw_of(request)
    body = await json_body(request, (("request_id", str),))
    rid = body["request_id"]
    entry = await gw.pending(rid)
    await gw.authenticate_callback(request.headers.get("Authorization"), entry, body.get("execution_id"))
    params = {
        "requestId": rid,
        "executionId": str(body.get("execution_id") or entry.get("execution_id") or "") or None,
        "step": body.get("step"),
        "message": body.get("message"),
        "progress": body.get("progress"),
    }
    await gw.deliver(
        str(entry.get("client_id")),
        [Frame("playbook/progress", notification("playbook/progress", params))],
        "progress",
        rid,
    )
    return web.json_response({"status": "sent"})
