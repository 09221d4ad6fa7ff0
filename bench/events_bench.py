"""Execution-path benchmarks (issue: execution path), each with a baseline measured in the same run.

1. POST /api/events completing a command and issuing the next one (target >= 1,500 req/s, p95 < 50 ms);
   baseline: a bare aiohttp + asyncpg one-insert handler.
2. POST /api/events/batch (target >= 30,000 events/s); baseline: asyncpg COPY of the same rows.
3. The outbox relay (target >= 10,000 notifications/s published and acked); baseline: nats-py publishing
   the same payloads with 1,000 in flight.

Run:  .venv/bin/python bench/events_bench.py [--executions 3000] [--concurrency 32]
Everything binds 127.0.0.1; every loop is bounded in count and time."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg
import nats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.devstack.ports import free_port
from app.ids import SnowflakeGenerator
from app.metrics import Metrics
from app.outbox import Relay
from bench._stack import ROOT, drive, machine, server, services, summary, wait_http

PLAYBOOK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: bench, path: bench/two}
workflow:
  - step: start
    tool: {kind: noop}
    next: {arcs: [{step: second}]}
  - step: second
    tool: {kind: noop}
"""


async def single_events(url: str, dsn: str, n: int, conc: int) -> dict[str, float]:
    async with aiohttp.ClientSession() as http:
        r = await http.post(
            f"{url}/api/catalog/register", json={"content": base64.b64encode(PLAYBOOK.encode()).decode()}
        )
        assert r.status == 200, await r.text()
        eids: list[str] = []

        async def start(i: int) -> None:
            async with http.post(f"{url}/api/execute", json={"path": "bench/two"}) as resp:
                eids.append((await resp.json())["execution_id"])

        await drive(n, conc, start)
        conn = await asyncpg.connect(dsn, server_settings={"search_path": "noetl"})
        rows = await conn.fetch("SELECT execution_id, command_id FROM command WHERE step_name = 'start'")
        await conn.close()
        gen = SnowflakeGenerator(900)
        bodies = [
            {
                "execution_id": str(r["execution_id"]),
                "step": "start",
                "event_type": "command.completed",
                "status": "success",
                "event_id": gen.next_id(),
                "worker_id": "bench",
                "meta": {"command_id": r["command_id"]},
                "payload": {"command_id": str(r["command_id"])},
            }
            for r in rows
        ]
        generated = 0

        async def post(i: int) -> None:
            nonlocal generated
            async with http.post(f"{url}/api/events", json=bodies[i]) as resp:
                body = await resp.json()
                assert resp.status == 200, body
                generated += body["commands_generated"]

        elapsed, lat = await drive(len(bodies), conc, post)
    assert generated == len(lat), (generated, len(lat))
    return summary("  POST /api/events (complete + issue next)", len(lat), elapsed, lat)


async def baseline_events(dsn: str, n: int, conc: int) -> dict[str, float]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "_baseline_server.py"), str(port)],
        env={"DATABASE_URL": dsn, "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        body = {"execution_id": "1", "event_type": "command.completed", "payload": {"command_id": "1"}}
        async with aiohttp.ClientSession() as http:

            async def post(i: int) -> None:
                async with http.post(f"http://127.0.0.1:{port}/api/events", json=body) as resp:
                    await resp.read()

            elapsed, lat = await drive(n, conc, post)
        return summary("  baseline: aiohttp + asyncpg one INSERT", len(lat), elapsed, lat)
    finally:
        proc.terminate()
        proc.wait(10)


def batch_bodies(eids: list[str], per: int = 256) -> list[dict]:  # type: ignore[type-arg]
    gen = SnowflakeGenerator(901)
    return [
        {
            "execution_id": eid,
            "worker_id": "bench",
            "events": [
                {
                    "step": "start",
                    "name": "step.progress",
                    "event_id": gen.next_id(),
                    "payload": {"i": i, "note": "x" * 40},
                }
                for i in range(per)
            ],
        }
        for eid in eids
    ]


async def batch_events(url: str, dsn: str, batches: int, conc: int) -> tuple[dict[str, float], list[dict]]:  # type: ignore[type-arg]
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "noetl"})
    eids = [
        str(r["execution_id"])
        for r in await conn.fetch("SELECT execution_id FROM execution LIMIT $1", batches)
    ]
    await conn.close()
    bodies = batch_bodies(eids)
    async with aiohttp.ClientSession() as http:

        async def post(i: int) -> None:
            async with http.post(f"{url}/api/events/batch", json=bodies[i]) as resp:
                assert resp.status == 200, await resp.text()

        elapsed, lat = await drive(len(bodies), conc, post)
    return summary("  POST /api/events/batch (events)", len(lat) * 256, elapsed), bodies


async def baseline_copy(dsn: str, bodies: list[dict]) -> dict[str, float]:  # type: ignore[type-arg]
    conn = await asyncpg.connect(dsn)
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS bench_copy (execution_id bigint, event_id bigint, "
        "event_type text, node_name text, result jsonb)"
    )
    records = [
        (
            int(b["execution_id"]),
            e["event_id"] + 1,
            e["name"],
            e["step"],
            json.dumps({"status": "RUNNING", "context": e["payload"]}),
        )
        for b in bodies
        for e in b["events"]
    ]
    start = time.perf_counter()
    for i in range(0, len(records), 256):
        await conn.copy_records_to_table("bench_copy", records=records[i : i + 256])
    elapsed = time.perf_counter() - start
    await conn.close()
    return summary("  baseline: asyncpg COPY of the same rows", len(records), elapsed)


async def relay_bench(dsn: str, nats_url: str, n: int) -> dict[str, float]:
    pool = await asyncpg.create_pool(dsn, server_settings={"search_path": "noetl"}, min_size=2, max_size=4)
    await pool.execute("DELETE FROM outbox")
    await pool.execute(
        "INSERT INTO outbox (execution_id, event_id, kind, subject, payload, payload_codec) "
        "SELECT 1, 9000000000 + g, 'command', 'noetl.commands.benchpool.1', "
        "jsonb_build_object('execution_id', 1, 'event_id', 9000000000 + g, 'command_id', g, 'step', 's', "
        "'server_url', 'http://127.0.0.1:1', 'execution_pool', 'benchpool'), 'json' FROM generate_series(1, $1) g",
        n,
    )
    nc = await nats.connect(nats_url)
    js = nc.jetstream()

    async def publish(subject: str, data: bytes, msg_id: str) -> None:
        await js.publish(subject, data, headers={"Nats-Msg-Id": msg_id})

    relay = Relay(pool, publish, Metrics(), batch_size=1000, concurrency=1000)
    start = time.perf_counter()
    published = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        got = await relay.run_once()
        if not got:
            break
        published += got
    elapsed = time.perf_counter() - start
    left = await pool.fetchval("SELECT count(*) FROM outbox WHERE status <> 'PUBLISHED'")
    assert left == 0, left
    res = summary("  outbox relay (published + acked + marked)", published, elapsed)
    payloads = [
        (r["subject"], json.dumps(r["payload"]).encode(), str(r["event_id"] + 10**12))
        for r in await pool.fetch("SELECT subject, payload, event_id FROM outbox")
    ]
    sem = asyncio.Semaphore(1000)

    async def one(p: tuple[str, bytes, str]) -> None:
        async with sem:
            await js.publish(p[0], p[1], headers={"Nats-Msg-Id": p[2]})

    start = time.perf_counter()
    await asyncio.gather(*(one(p) for p in payloads))
    base = summary("  baseline: nats-py publish, 1,000 in flight", len(payloads), time.perf_counter() - start)
    res["baseline"] = base["rate"]
    await nc.close()
    await pool.close()
    return res


async def main_async(args: argparse.Namespace, dsn: str, nats_url: str) -> None:
    print(f"machine: {machine()}; load generator, PostgreSQL, NATS and server on this box", flush=True)
    with server(dsn, nats_url, NOETL_EVENT_MIRROR_ENABLED="true") as url:
        ours = await single_events(url, dsn, args.executions, args.concurrency)
        base = await baseline_events(dsn, args.executions, args.concurrency)
        print(f"  ratio events: {ours['rate'] / base['rate']:.2f} of baseline", flush=True)
        b_ours, bodies = await batch_events(url, dsn, min(200, args.executions), 8)
    b_base = await baseline_copy(dsn, bodies)
    print(f"  ratio batch: {b_ours['rate'] / b_base['rate']:.2f} of COPY", flush=True)
    relay = await relay_bench(dsn, nats_url, args.relay)
    print(f"  ratio relay: {relay['rate'] / relay['baseline']:.2f} of raw nats-py", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--executions", type=int, default=3000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--relay", type=int, default=30000)
    args = p.parse_args()
    with services() as (dsn, nats_url):
        asyncio.run(main_async(args, dsn, nats_url))


if __name__ == "__main__":
    main()
