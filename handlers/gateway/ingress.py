"""POST /ingress/{listener}: push ingress (gateway.md §11); no session, the delivery authenticates itself."""

from __future__ import annotations

from aiohttp import web

from app.gateway.ingress import DISABLED, Reject
from handlers.gateway.common import gw_of, rate_limited

routes = web.RouteTableDef()


def _rejected(exc: Reject) -> web.Response:
    return web.json_response(exc.body(), status=exc.status)


async def _read_limited(request: web.Request, limit: int) -> bytes | None:
    """The raw body, or None when it exceeds `limit` (read no further than limit + 1 bytes)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


@routes.post("/ingress/{listener}")
async def post_ingress(request: web.Request) -> web.Response:
    gw = gw_of(request)
    ing = gw.ingress
    if not ing.enabled:
        return web.Response(status=503, text=DISABLED)
    limited = rate_limited(request, gw.ingress_limiter, "ingress")
    if limited is not None:
        return limited
    listener = request.match_info["listener"]
    try:
        cfg = await ing.config(listener)
        gw.metrics.ingress_received.labels(subscription=listener).inc()
        body = await _read_limited(request, gw.ingress_settings.max_body_bytes)
        if body is None:
            ing.reject(listener, Reject(413, "payload_too_large", "request body exceeds the ingress limit"))
        # Verification sees only the raw bytes and headers; nothing is parsed before it succeeds.
        await ing.verify(listener, cfg, request.headers, body)
        eid = await ing.dispatch(listener, cfg, list(request.headers.items()), body)
    except Reject as exc:
        return _rejected(exc)
    return web.json_response({"status": "accepted", "execution_id": eid}, status=202)
