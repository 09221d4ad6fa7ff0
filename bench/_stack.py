"""Benchmark plumbing: embedded PostgreSQL + NATS, a server subprocess, latency statistics."""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg

from app.db.migrate import migrate
from app.devstack.nats import EmbeddedNats
from app.devstack.ports import free_port
from app.devstack.postgres import EmbeddedPostgres

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    """One line describing the machine."""
    return f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def load() -> str:
    """The 1/5/15-minute load averages: the machine is shared, so every phase states what it ran beside."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


@contextmanager
def services():  # type: ignore[no-untyped-def]
    """Yield (database DSN, NATS URL) of fresh embedded servers (or the env-named ones)."""
    tmp = Path(tempfile.mkdtemp(prefix="noetl-bench-"))
    pg = nats = None
    try:
        dsn = os.environ.get("NOETL_TEST_DATABASE_URL")
        if not dsn:
            pg = EmbeddedPostgres(tmp / "pg")
            admin = pg.start()
            asyncio.run(_create_db(admin))
            dsn = admin.rsplit("/", 1)[0] + "/bench"
        url = os.environ.get("NOETL_TEST_NATS_URL")
        if not url:
            nats = EmbeddedNats(tmp / "nats")
            url = nats.start()
        asyncio.run(migrate(dsn, "noetl"))
        yield dsn, url
    finally:
        if nats:
            nats.stop()
        if pg:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


async def _create_db(admin: str) -> None:
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute("DROP DATABASE IF EXISTS bench")
        await conn.execute("CREATE DATABASE bench")
    finally:
        await conn.close()


@contextmanager
def server(dsn: str, nats_url: str | None, **env: str):  # type: ignore[no-untyped-def]
    """Run `noetl-control-plane serve` as a subprocess; yield its base URL."""
    port = free_port()
    e = {k: v for k, v in os.environ.items() if not k.startswith(("NOETL_", "POSTGRES_", "NATS_"))}
    e.update(
        {
            "DATABASE_URL": dsn,
            "NOETL_PORT": str(port),
            "NOETL_HOST": "127.0.0.1",
            "NOETL_LOG_LEVEL": "warning",
            "POSTGRES_MAX_CONNECTIONS": "20",
            **env,
        }
    )
    if nats_url:
        e["NATS_URL"] = nats_url
    with process([sys.executable, "-m", "app", "serve", "--no-migrate"], port, "/healthz", env=e) as url:
        yield url


@contextmanager
def process(argv: list[str], port: int, health: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run argv as a quiet subprocess serving on 127.0.0.1:port; yield its base URL once `health` answers."""
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}{health}")
        yield url
    finally:
        proc.terminate()
        proc.wait(20)


def wait_http(url: str, timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


async def drive(
    n: int, concurrency: int, call: Callable[[int], Awaitable[Any]], budget_s: float = 120.0
) -> tuple[float, list[float]]:
    """Run call(i) for i < n with bounded concurrency and time; return (elapsed, latencies)."""
    lat: list[float] = []
    it = iter(range(n))
    deadline = time.monotonic() + budget_s

    async def worker() -> None:
        for i in it:
            if time.monotonic() > deadline:
                return
            t = time.perf_counter()
            await call(i)
            lat.append(time.perf_counter() - t)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, lat


def pct(values: list[float], p: float) -> float:
    """p-th percentile (0..100) in milliseconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k] * 1000


def summary(name: str, count: int, elapsed: float, lat: list[float] | None = None) -> dict[str, float]:
    rate = count / elapsed if elapsed else 0.0
    line = f"{name}: {count} in {elapsed:.2f}s = {rate:,.0f}/s"
    if lat:
        line += f"  p50 {pct(lat, 50):.1f} ms  p95 {pct(lat, 95):.1f} ms  mean {statistics.mean(lat) * 1000:.1f} ms"
    print(line, flush=True)
    return {"rate": rate, "p50": pct(lat or [], 50), "p95": pct(lat or [], 95)}
