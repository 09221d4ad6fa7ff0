"""Baselines for the gateway validate benchmark: bare aiohttp, and bare aiohttp + one NATS K/V get."""

from __future__ import annotations

import json
import sys

import nats
from aiohttp import web
from nats.js.api import KeyValueConfig


async def make_app(nats_url: str | None) -> web.Application:
    kv = None
    if nats_url:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        kv = await js.create_key_value(config=KeyValueConfig(bucket="bench_baseline", ttl=300.0, history=1))
        await kv.put("k", json.dumps({"is_active": True}).encode())

    async def handler(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        if kv is not None:
            json.loads((await kv.get("k")).value or b"{}")
        return web.json_response({"valid": bool(body.get("session_token"))})

    app = web.Application()
    app.router.add_post("/api/auth/validate", handler)
    app.router.add_get("/health", lambda r: web.Response(text="ok"))
    return app


if __name__ == "__main__":
    url = sys.argv[2] if len(sys.argv) > 2 else None
    web.run_app(make_app(url), host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
