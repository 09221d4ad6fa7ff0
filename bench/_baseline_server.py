"""Baseline for the events benchmark: a bare aiohttp + asyncpg handler doing one INSERT per request."""

from __future__ import annotations

import json
import os
import sys

import asyncpg
from aiohttp import web


async def make_app() -> web.Application:
    pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=5, max_size=20)
    await pool.execute("CREATE TABLE IF NOT EXISTS bench_baseline (id bigserial primary key, body jsonb)")

    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        rid = await pool.fetchval(
            "INSERT INTO bench_baseline (body) VALUES ($1::jsonb) RETURNING id", body.decode()
        )
        return web.Response(
            text=json.dumps({"status": "ok", "event_id": rid}), content_type="application/json"
        )

    app = web.Application()
    app.router.add_post("/api/events", handler)
    app.router.add_get("/healthz", lambda r: web.Response(text="ok"))
    return app


if __name__ == "__main__":
    web.run_app(make_app(), host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
