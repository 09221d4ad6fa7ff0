"""/noetl/{path} -> {NOETL_BASE_URL}/api/{path} for authenticated sessions (gateway.md §12, §5.3)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from aiohttp import web

from app.gateway.proxy_rules import Rule, decide, path_problem
from handlers.gateway.common import SESSION, TOKEN, authenticated, error, gw_of

MAX_BODY = 10 * 1024 * 1024
TIMEOUT = aiohttp.ClientTimeout(total=300)


def _forward_headers(request: web.Request) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in request.headers.items():
        low = name.lower()
        if low in {"content-type", "accept"} or (low.startswith("x-") and low != "x-user-id"):
            out[name] = value
    return out


@authenticated
async def proxy(request: web.Request) -> web.StreamResponse:
    gw = gw_of(request)
    raw = request.rel_url.raw_path[len("/noetl/") :]
    problem = path_problem(raw)
    if problem is not None:
        return error(problem, 400)
    if raw == "internal" or raw.startswith("internal/"):
        return error("Access denied: internal routes are not reachable through the gateway", 403)
    body = b""
    if request.method in {"POST", "PUT", "PATCH"}:
        if request.content_length is not None and request.content_length > MAX_BODY:
            return error("request body too large", 413)
        body = await request.read()
        if len(body) > MAX_BODY:
            return error("request body too large", 413)
    if not gw.settings.auth_bypass:
        denied = await _authorize(request, raw, body)
        if denied is not None:
            return denied
    url = f"{gw.server.base}/api/{raw}"
    if request.rel_url.raw_query_string:
        url += "?" + request.rel_url.raw_query_string
    try:
        async with gw.http.request(
            request.method,
            url,
            data=body if body else None,
            headers=_forward_headers(request),
            timeout=TIMEOUT,
            allow_redirects=False,
            auto_decompress=False,
        ) as upstream:
            try:
                payload = await upstream.read()
            except aiohttp.ClientError as exc:
                return error(f"Failed to read response: {type(exc).__name__}", 502)
            headers = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower() in {"content-type"} or k.lower().startswith("x-")
            }
            return web.Response(status=upstream.status, body=payload, headers=headers)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return error(f"Proxy request failed: {type(exc).__name__}", 502)


async def _authorize(request: web.Request, raw: str, body: bytes) -> web.Response | None:
    gw = gw_of(request)
    session = request[SESSION]
    token = request[TOKEN]
    parsed: Any = None
    if body:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
    rule: Rule = decide(request.method, raw, parsed)
    if rule.kind == "authenticated":
        return None
    if rule.kind == "admin":
        if "admin" in session.user.get("roles", []):
            return None
        return error(f"Access denied: admin role required for {raw}", 403)
    paths = list(rule.paths)
    if rule.execution_id is not None:
        try:
            detail = await gw.server.call("GET", f"/api/executions/{rule.execution_id}?include_events=false")
            paths = [str(detail.get("path") or "")]
        except Exception:
            return error(f"Access denied: {rule.action} on execution {rule.execution_id}", 403)
    if not paths:
        return error(f"Access denied: {rule.action} on {raw}", 403)
    for path in paths:
        if not await gw.authorize(token, path, rule.action):
            return error(f"Access denied: {rule.action} on {path}", 403)
    return None


def install(app: web.Application) -> None:
    """Every proxied method; OPTIONS is answered by CORS."""
    for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
        app.router.add_route(method, "/noetl/{path:.*}", proxy)
