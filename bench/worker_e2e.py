"""End-to-end throughput: three-step python playbooks through server, outbox, NATS and real workers.

All roles on one box: embedded PostgreSQL and NATS, `serve` and N `worker` subprocesses; the load
generator keeps C executions in flight for the given time, each one POST /api/execute then polling
its status until terminal. Prints executions/s and latency percentiles, then runs the comparators of
bench/compare_bench.py (procrastinate, DBOS) on the same PostgreSQL server for the same duration and
prints our steps/s / procrastinate jobs/s and our executions/s / DBOS workflows/s (skipped with a
message when the optional `bench` extra is not installed, or with --no-compare).

    .venv/bin/python bench/worker_e2e.py --duration 60 --in-flight 16 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import compare_bench
from bench._stack import ROOT, load, machine, pct, server, services

PLAYBOOK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: three, path: bench/three}
workload: {n: 3}
workflow:
  - step: a
    tool: {kind: python, input: {n: "{{ n }}"}, code: "result = {'v': n + 1}"}
    next: {arcs: [{step: b}]}
  - step: b
    tool: {kind: python, input: {v: "{{ a.v }}"}, code: "result = {'v': v * 2}"}
    next: {arcs: [{step: c}]}
  - step: c
    tool: {kind: python, input: {v: "{{ b.v }}"}, code: "result = {'v': v - 1}"}
"""


def start_workers(n: int, url: str, nats_url: str, concurrency: int) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(n):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NOETL_", "NATS_", "WORKER_"))}
        env.update(
            NATS_URL=nats_url,
            NOETL_SERVER_URL=url,
            WORKER_ID=f"bench-worker-{i}",
            WORKER_POOL_NAME="shared",
            WORKER_MAX_CONCURRENT=str(concurrency),
            NOETL_LOG_LEVEL="warning",
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "app", "worker"],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
    return procs


async def wait_workers(http: aiohttp.ClientSession, url: str, n: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        async with http.get(f"{url}/api/worker/pools", params={"status": "ready"}) as r:
            items = (await r.json())["items"]
        if sum(1 for i in items if i["name"].startswith("bench-worker-")) >= n:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("workers did not register")


async def run(url: str, seconds: float, in_flight: int, workers: int) -> dict[str, float]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight * 2)) as http:
        await wait_workers(http, url, workers)
        body = {"content": base64.b64encode(PLAYBOOK.encode()).decode(), "resource_type": "Playbook"}
        async with http.post(f"{url}/api/catalog/register", json=body) as r:
            assert r.status == 200, await r.text()
        latencies: list[float] = []
        failures = 0
        deadline = 0.0

        async def one() -> None:
            nonlocal failures
            t = time.perf_counter()
            async with http.post(f"{url}/api/execute", json={"path": "bench/three"}) as r:
                eid = (await r.json())["execution_id"]
            while True:
                await asyncio.sleep(0.1)  # polling is load too; keep it modest
                async with http.get(f"{url}/api/executions/{eid}/status") as r:
                    status = (await r.json())["status"]
                if status in ("COMPLETED", "FAILED", "CANCELLED"):
                    break
                if time.perf_counter() - t > 60:
                    status = "TIMEOUT"
                    break
            if status != "COMPLETED":
                failures += 1
            latencies.append(time.perf_counter() - t)

        async def loop() -> None:
            while time.monotonic() < deadline:
                await one()

        for _ in range(5):  # warm-up: runners, caches
            await one()
        latencies.clear()
        failures = 0
        print(f"ours: start, {load()}", flush=True)
        # The window starts after the warm-up, so the measured time is the whole --duration.
        deadline = time.monotonic() + seconds
        start = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(in_flight)))
        elapsed = time.perf_counter() - start
    print(machine())
    print(
        f"three-step python playbooks: {len(latencies)} in {elapsed:.1f}s = {len(latencies) / elapsed:.1f} "
        f"executions/s; p50 {pct(latencies, 50):.0f} ms, p95 {pct(latencies, 95):.0f} ms; "
        f"failed {failures}; {in_flight} in flight, {workers} workers; end, {load()}",
        flush=True,
    )
    return {"rate": len(latencies) / elapsed, "p50_ms": pct(latencies, 50), "p95_ms": pct(latencies, 95)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--duration", "--seconds", dest="seconds", type=float, default=60)
    p.add_argument("--in-flight", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--worker-concurrency", type=int, default=8)
    p.add_argument("--no-compare", action="store_true", help="skip the procrastinate / DBOS comparison")
    a = p.parse_args()
    with services() as (dsn, nats_url):
        with server(dsn, nats_url) as url:
            procs = start_workers(a.workers, url, nats_url, a.worker_concurrency)
            try:
                ours = asyncio.run(run(url, a.seconds, a.in_flight, a.workers))
            finally:
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    try:
                        proc.wait(30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
        # Our server and workers are stopped first: the comparators get the same (idle) machine.
        if not a.no_compare:
            compare_bench.compare(dsn, a.seconds, a.in_flight, ours)


if __name__ == "__main__":
    main()
