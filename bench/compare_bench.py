"""Comparators for bench/worker_e2e.py: procrastinate and DBOS on the same PostgreSQL server.

Each comparator gets its own database on the server the bench started and runs after our own
measurement (never at the same time: the machine has 2 cores), for the same duration:

- procrastinate: a trivial task, one worker process with concurrency 10; a producer keeps a bounded
  backlog deferred and jobs/s is the count of jobs that reached `succeeded` in the window.
- DBOS: a workflow of three steps, run in its own process (DBOS is a per-process singleton) by
  `in_flight` concurrent callers; workflows/s and latency percentiles.

Both libraries come from the optional `bench` extra (`pip install -e '.[bench]'`); when one is missing
the bench says so and skips it. Standalone: `.venv/bin/python bench/compare_bench.py --duration 60`.
Internal roles (started by this module as subprocesses): `procrastinate-worker`, `dbos`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg

from bench._stack import ROOT, load, pct

INSTALL_HINT = ".venv/bin/pip install -e '.[bench]'"
PROCRASTINATE_CONCURRENCY = 10
TASK_NAME = "noetl_bench_noop"
QUEUE = "noetl_bench"
BACKLOG = 200  # deferred-but-not-finished jobs the producer keeps ahead of the worker
BATCH = 50  # jobs per batch_defer_async call


def missing() -> list[str]:
    """Names of the comparator libraries that are not installed."""
    gone = []
    for name in ("procrastinate", "dbos"):
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            gone.append(name)
    return gone


def database_url(base_dsn: str, name: str) -> str:
    """The DSN of database ``name`` on the server of ``base_dsn``."""
    head, _, tail = base_dsn.rpartition("/")
    query = tail.partition("?")[2]
    return f"{head}/{name}" + (f"?{query}" if query else "")


async def fresh_database(base_dsn: str, name: str) -> str:
    """Drop and create database ``name`` on the same server; return its DSN."""
    conn = await asyncpg.connect(base_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return database_url(base_dsn, name)


# --- procrastinate ---------------------------------------------------------------------------------


async def _noop() -> None:
    return None


def _procrastinate_app(dsn: str) -> Any:
    import procrastinate

    # It warns that the App lives in __main__ (the worker role runs this file as a script): by design here.
    logging.getLogger("procrastinate").setLevel(logging.ERROR)

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))
    app.task(name=TASK_NAME, queue=QUEUE)(_noop)
    return app


async def _procrastinate_worker(dsn: str, max_seconds: float) -> None:
    """One procrastinate worker, concurrency 10, until SIGTERM (or max_seconds, the safety bound)."""
    app = _procrastinate_app(dsn)
    async with app.open_async():
        worker = asyncio.ensure_future(
            app.run_worker_async(
                queues=[QUEUE], concurrency=PROCRASTINATE_CONCURRENCY, name="bench", wait=True
            )
        )
        done, _ = await asyncio.wait([worker], timeout=max_seconds)
        if not done:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)


async def _succeeded(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"))


async def _procrastinate_drive(dsn: str, seconds: float) -> dict[str, Any]:
    app = _procrastinate_app(dsn)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "procrastinate-worker",
                "--dsn",
                dsn,
                "--max-seconds",
                str(seconds + 120),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        conn = await asyncpg.connect(dsn)
        task = app.tasks[TASK_NAME]
        deferred = 0
        try:

            async def run_until(stop: float, limit: int | None = None) -> int:
                """Keep the backlog full until ``stop`` (or ``limit`` successes); return successes seen."""
                nonlocal deferred
                done = await _succeeded(conn)
                while time.monotonic() < stop and (limit is None or done < limit):
                    if proc.poll() is not None:
                        err = proc.stderr.read().decode() if proc.stderr else ""
                        raise RuntimeError(f"procrastinate worker exited: {err[-400:]}")
                    if deferred - done < BACKLOG:
                        await task.batch_defer_async(*({} for _ in range(BATCH)))
                        deferred += BATCH
                    else:
                        await asyncio.sleep(0.005)
                    done = await _succeeded(conn)
                return done

            # Warm-up: the worker connects, LISTENs and runs its first jobs.
            await run_until(time.monotonic() + 60, limit=200)
            start_done = await _succeeded(conn)
            t0 = time.perf_counter()
            end_done = await run_until(time.monotonic() + seconds)
            elapsed = time.perf_counter() - t0
            lat = await conn.fetchrow(
                """
                SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d) AS p50,
                       percentile_cont(0.95) WITHIN GROUP (ORDER BY d) AS p95
                FROM (SELECT extract(epoch FROM s.at - q.at) AS d
                      FROM procrastinate_events s JOIN procrastinate_events q USING (job_id)
                      WHERE s.type = 'succeeded' AND q.type = 'deferred') t
                """
            )
        finally:
            await conn.close()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    n = end_done - start_done
    return {
        "jobs": n,
        "seconds": elapsed,
        "rate": n / elapsed,
        "p50_ms": float(lat["p50"] or 0) * 1000,
        "p95_ms": float(lat["p95"] or 0) * 1000,
    }


def run_procrastinate(base_dsn: str, seconds: float) -> dict[str, Any]:
    """procrastinate jobs/s end to end (defer -> worker ran it -> succeeded) in its own database."""

    async def go() -> dict[str, Any]:
        dsn = await fresh_database(base_dsn, "cmp_procrastinate")
        return await _procrastinate_drive(dsn, seconds)

    return asyncio.run(go())


# --- DBOS ------------------------------------------------------------------------------------------


def _dbos_role(dsn: str, seconds: float, in_flight: int) -> None:
    """Run three-step DBOS workflows with ``in_flight`` callers for ``seconds``; print one JSON line."""
    from dbos import DBOS, DBOSConfig

    @DBOS.step()
    async def add_one(n: int) -> int:
        return n + 1

    @DBOS.step()
    async def double(v: int) -> int:
        return v * 2

    @DBOS.step()
    async def minus_one(v: int) -> int:
        return v - 1

    @DBOS.workflow()
    async def three(n: int) -> int:
        return await minus_one(await double(await add_one(n)))

    config: DBOSConfig = {"name": "noetl-bench", "system_database_url": dsn, "log_level": "WARNING"}
    DBOS(config=config)
    DBOS.launch()
    try:

        async def drive() -> dict[str, Any]:
            for _ in range(20):  # warm-up: pool connections, statement caches
                assert await three(3) == 7
            lat: list[float] = []
            deadline = time.monotonic() + seconds

            async def caller() -> None:
                while time.monotonic() < deadline:
                    t = time.perf_counter()
                    assert await three(3) == 7
                    lat.append(time.perf_counter() - t)

            t0 = time.perf_counter()
            await asyncio.gather(*(caller() for _ in range(in_flight)))
            elapsed = time.perf_counter() - t0
            return {
                "workflows": len(lat),
                "seconds": elapsed,
                "rate": len(lat) / elapsed,
                "p50_ms": pct(lat, 50),
                "p95_ms": pct(lat, 95),
            }

        result = asyncio.run(drive())
    finally:
        DBOS.destroy()
    print(json.dumps(result), flush=True)


def run_dbos(base_dsn: str, seconds: float, in_flight: int) -> dict[str, Any]:
    """DBOS three-step workflows/s in its own database, measured in a subprocess."""
    dsn = asyncio.run(fresh_database(base_dsn, "cmp_dbos"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBOS_")}
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "dbos",
            "--dsn",
            dsn,
            "--duration",
            str(seconds),
            "--in-flight",
            str(in_flight),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=seconds + 180,
        check=False,
    )
    lines = [ln for ln in out.stdout.decode().splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"DBOS bench failed (rc {out.returncode}): {out.stderr.decode()[-800:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# --- report ----------------------------------------------------------------------------------------


def compare(base_dsn: str, seconds: float, in_flight: int, ours: dict[str, Any] | None) -> dict[str, Any]:
    """Run both comparators (those installed) and print them beside ``ours`` with the two ratios."""
    gone = missing()
    if gone:
        print(
            f"comparison skipped: {', '.join(gone)} not installed (optional extra `bench`: {INSTALL_HINT})",
            flush=True,
        )
    results: dict[str, Any] = {}
    if "procrastinate" not in gone:
        print(f"procrastinate: start, {load()}", flush=True)
        p = results["procrastinate"] = run_procrastinate(base_dsn, seconds)
        print(
            f"procrastinate: {p['jobs']} trivial jobs in {p['seconds']:.1f}s = {p['rate']:.1f} jobs/s "
            f"(1 worker, concurrency {PROCRASTINATE_CONCURRENCY}); defer->succeeded p50 {p['p50_ms']:.0f} ms, "
            f"p95 {p['p95_ms']:.0f} ms (queued behind a {BACKLOG}-job backlog: a throughput run); end, {load()}",
            flush=True,
        )
    if "dbos" not in gone:
        print(f"DBOS: start, {load()}", flush=True)
        d = results["dbos"] = run_dbos(base_dsn, seconds, in_flight)
        print(
            f"DBOS: {d['workflows']} three-step workflows in {d['seconds']:.1f}s = {d['rate']:.1f} workflows/s "
            f"({in_flight} in flight); p50 {d['p50_ms']:.0f} ms, p95 {d['p95_ms']:.0f} ms; end, {load()}",
            flush=True,
        )
    if ours is not None:
        steps = ours["rate"] * 3
        print(
            f"ours: {ours['rate']:.1f} executions/s = {steps:.1f} steps/s, p95 execution latency "
            f"{ours['p95_ms']:.0f} ms",
            flush=True,
        )
        if "procrastinate" in results:
            print(
                f"ratio ours steps/s / procrastinate jobs/s = {steps / results['procrastinate']['rate']:.3f}"
            )
        if "dbos" in results:
            print(
                f"ratio ours executions/s / DBOS workflows/s = {ours['rate'] / results['dbos']['rate']:.3f}"
            )
    return results


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("role", nargs="?", choices=["procrastinate-worker", "dbos"])
    p.add_argument("--dsn")
    p.add_argument("--duration", type=float, default=60)
    p.add_argument("--in-flight", type=int, default=16)
    p.add_argument("--max-seconds", type=float, default=300)
    a = p.parse_args()
    if a.role == "procrastinate-worker":
        asyncio.run(_procrastinate_worker(a.dsn, a.max_seconds))
    elif a.role == "dbos":
        _dbos_role(a.dsn, a.duration, a.in_flight)
    else:
        from bench._stack import machine, services

        print(machine())
        if a.dsn:
            compare(a.dsn, a.duration, a.in_flight, None)
        else:
            with services() as (dsn, _nats):
                compare(dsn, a.duration, a.in_flight, None)


if __name__ == "__main__":
    main()
