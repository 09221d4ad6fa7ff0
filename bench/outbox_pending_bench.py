"""Outbox pending-count benchmark (issue: internal operations; target p95 < 5 ms with 1,000,000 outbox rows).

GET /api/internal/outbox/pending-count is KEDA's metrics source, polled every few seconds by every scaler.
Two shapes of a 1,000,000-row outbox: a healthy one (1 % claimable, the rest PUBLISHED and waiting for
retention) and a backlog (every row claimable).

Run:  .venv/bin/python bench/outbox_pending_bench.py [--rows 1000000] [--requests 500]
Everything binds 127.0.0.1; every loop is bounded in count and time."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._stack import machine, pct, server, services

TOKEN = "b0b0" * 16


async def fill(dsn: str, rows: int, claimable: int) -> None:
    """Reset the outbox to `rows` rows of which `claimable` are PENDING."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "noetl"})
    try:
        await conn.execute("TRUNCATE outbox")
        await conn.execute(
            "INSERT INTO outbox (execution_id, event_id, kind, subject, payload, payload_codec, status, published_at)"
            " SELECT g % 1000, g, 'event', 'noetl.events.default.default.1.0', '{}'::jsonb, 'json',"
            "        CASE WHEN g <= $2 THEN 'PENDING' ELSE 'PUBLISHED' END,"
            "        CASE WHEN g <= $2 THEN NULL ELSE now() END"
            " FROM generate_series(1, $1) g",
            rows,
            claimable,
        )
        await conn.execute("VACUUM ANALYZE outbox")
    finally:
        await conn.close()


async def measure(
    url: str, requests: int, path: str = "/api/internal/outbox/pending-count", budget_s: float = 120.0
) -> tuple[list[float], int]:
    """Sequential polls (like a scaler); returns latencies in seconds and the last answer."""
    lat: list[float] = []
    last = -1
    deadline = time.monotonic() + budget_s
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        for _ in range(requests):
            if time.monotonic() > deadline:
                break
            t0 = time.perf_counter()
            async with http.get(f"{url}{path}") as r:
                body = await r.json()
            lat.append(time.perf_counter() - t0)
            last = int(body.get("pending", -1))
    return lat, last


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--requests", type=int, default=500)
    args = p.parse_args()
    print(f"machine: {machine()}")
    with services() as (dsn, _nats):
        env = {"NOETL_INTERNAL_API_TOKEN": TOKEN, "NOETL_OUTBOX_RELAY_ENABLED": "false"}
        with server(dsn, None, **env) as url:
            base, _ = asyncio.run(measure(url, args.requests, "/healthz"))
            print(
                f"baseline GET /healthz: p50 {pct(base, 50):.2f} ms  p95 {pct(base, 95):.2f} ms", flush=True
            )
            for label, claimable in (
                ("healthy (1% claimable)", args.rows // 100),
                ("backlog (all claimable)", args.rows),
            ):
                asyncio.run(fill(dsn, args.rows, claimable))
                lat, answer = asyncio.run(measure(url, args.requests))
                print(
                    f"pending-count, {args.rows:,} rows, {label}: answer {answer:,}; {len(lat)} polls"
                    f"  p50 {pct(lat, 50):.2f} ms  p95 {pct(lat, 95):.2f} ms  p99 {pct(lat, 99):.2f} ms",
                    flush=True,
                )


if __name__ == "__main__":
    main()
