"""GET /events: the SSE stream (gateway.md §10) with session binding, lifecycle frames and resumption."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from app.errors import NoetlError
from app.gateway.core import Gateway
from app.gateway.frames import compact, error_payload, notification, state_from_event
from app.gateway.kv import KvError
from app.gateway.metrics import VERSION
from app.gateway.registry import Connection, Frame
from app.gateway.requests import CLIENT_ID_RE
from app.gateway.sessions import extract_token
from handlers.gateway.common import error, gw_of

routes = web.RouteTableDef()

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
IDLE_COMMENT_SECS = 15.0
REPLAY_PAGE = 200


async def _one_frame(request: web.Request, event: str, code: int, message: str) -> web.StreamResponse:
    async with sse_response(request, headers=HEADERS, sep="\n") as resp:
        await resp.send(compact(error_payload(code, message)), event=event)
    return resp


@routes.get("/events")
async def get_events(request: web.Request) -> web.StreamResponse:
    gw = gw_of(request)
    if not gw.settings.sse_enabled:
        return web.Response(status=404)
    token = request.query.get("session_token")
    if token is None:
        token = extract_token(request.headers)
    if token is None:
        return error("session_token is required", 400)
    client_id = request.query.get("client_id")
    if client_id is not None and not CLIENT_ID_RE.match(client_id):
        return error("client_id must match ^[A-Za-z0-9_-]{1,64}$", 400)
    try:
        session = await gw.resolve(token)
    except NoetlError:
        session = None
    if session is None:
        return await _one_frame(request, "error", -32002, "Invalid or expired session")
    if gw.registry.open_count(session.token_hash) >= gw.settings.sse_max_per_session:
        gw.metrics.rate_limited.labels(route="sse").inc()
        return error("rate limit exceeded", 429, {"Retry-After": "5"})
    client_id = client_id or str(uuid.uuid4())
    try:
        owner = await gw.store.client_owner(client_id)
        if owner is not None and owner != session.token_hash:
            return await _one_frame(request, "error", -32003, "Client id belongs to another session")
        await gw.store.bind_client(client_id, session.token_hash)
    except KvError:
        pass  # degraded: streams still work, without routing state
    conn = Connection(client_id, session.token_hash)
    pending = await gw.store.by_client(client_id)
    last_event_id = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    gw.registry.add(conn)
    try:
        resp = EventSourceResponse(headers=HEADERS, sep="\n", ping_interval=IDLE_COMMENT_SECS)
        await resp.prepare(request)
        result: dict[str, object] = {
            "protocolVersion": "2024-11-05",
            "serverInfo": {"name": "noetl-gateway", "version": VERSION},
            "clientId": client_id,
            "capabilities": {
                "playbooks": True,
                "callbacks": True,
                "subscriptions": False,
                "playbookState": True,
            },
        }
        if pending:
            result["pendingRequests"] = [
                {
                    "requestId": p["request_id"],
                    "executionId": p.get("execution_id"),
                    "playbookPath": p.get("playbook_path"),
                }
                for p in pending
            ]
        await resp.send(compact({"jsonrpc": "2.0", "id": 1, "result": result}), event="message", retry=3000)
        await resp.send(compact(notification("ping", {})), event="ping")
        if last_event_id:
            await _replay(gw, conn, pending, last_event_id)
        await _pump(gw, conn, resp, token)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        conn.close()
        gw.registry.remove(conn)
    return resp


async def _replay(gw: Gateway, conn: Connection, pending: list[dict[str, object]], after: str) -> None:
    """Missed lifecycle frames from the server's event log, in event-id order (§10.1)."""
    try:
        after_id = int(after)
    except ValueError:
        return
    frames: list[tuple[int, Frame]] = []
    for eid in sorted({str(p.get("execution_id")) for p in pending if p.get("execution_id")}):
        with contextlib.suppress(Exception):
            page = await gw.server.call(
                "GET",
                f"/api/executions/{eid}/events?since_event_id={after_id}&page_size={REPLAY_PAGE}",
                timeout=10,
            )
            events = page.get("events", []) if isinstance(page, dict) else page
            for ev in events or []:
                if not isinstance(ev, dict):
                    continue
                # Event-log items do not repeat their execution id; the mapping needs it.
                params = state_from_event({"execution_id": eid, **ev}, "", gw.settings.updates_subject_prefix)
                ev_id = ev.get("event_id")
                if params is None or ev_id is None or int(ev_id) <= after_id:
                    continue
                frames.append(
                    (int(ev_id), Frame("playbook/state", notification("playbook/state", params), str(ev_id)))
                )
    for _, frame in sorted(frames, key=lambda f: f[0]):
        conn.send(frame)


async def _pump(gw: Gateway, conn: Connection, resp: EventSourceResponse, token: str) -> None:
    """Write queued frames; JSON-RPC ping and a session re-check every heartbeat."""
    loop = asyncio.get_running_loop()
    period = gw.settings.heartbeat_interval_secs
    next_beat = loop.time() + period
    while True:
        timeout = max(0.0, next_beat - loop.time())
        try:
            frame = await asyncio.wait_for(conn.queue.get(), timeout)
        except TimeoutError:
            next_beat = loop.time() + period
            try:
                still = await gw.resolve(token)
            except NoetlError:
                still = True  # type: ignore[assignment]  # backend hiccup: keep the stream
            if still is None:
                await resp.send(compact(error_payload(-32002, "Invalid or expired session")), event="error")
                return
            await resp.send(compact(notification("ping", {})), event="ping")
            continue
        if frame is None:
            return
        await resp.send(compact(frame.data), event=frame.event, id=frame.id)
