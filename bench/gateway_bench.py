"""Gateway benchmarks (issue 8), against a real server and gateway subprocess on 127.0.0.1.

1. Session validation on a cache hit: POST /api/auth/validate paced open-loop at --rate req/s
   (target at 1,000 req/s: p50 < 1 ms, p99 < 5 ms). The server's validate-route counter proves the
   requests were answered from the NATS K/V cache.
2. SSE fan-out: --clients /events streams, each owning a pending request on its own execution; lifecycle
   events published on the NOETL_EVENTS mirror subjects at --events-rate per second (round-robin over the
   executions); latency = publish → frame parsed by the client (target at 1,000 events/s to 200 clients:
   p95 < 100 ms).

Run:  .venv/bin/python bench/gateway_bench.py [--rate 1000] [--seconds 10] [--clients 200] [--events-rate 1000]
Everything binds 127.0.0.1; every loop is bounded in count and time."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import nats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.devstack.ports import free_port
from app.gateway.sessions import token_hash
from bench._stack import ROOT, machine, pct, process, server, services
from tests.support.auth0 import AUDIENCE, DOMAIN, fake_auth0

INTERNAL = "bench-internal-token"


@contextmanager
def gateway(server_url: str, nats_url: str, jwks_url: str) -> Iterator[str]:
    """Run `noetl-control-plane gateway` as a subprocess; yield its base URL."""
    port = free_port()
    e = {k: v for k, v in os.environ.items() if not k.startswith(("NOETL_", "NATS_", "GATEWAY_", "ROUTER_"))}
    e.update(
        {
            "ROUTER_PORT": str(port),
            "GATEWAY_BIND": "127.0.0.1",
            "NOETL_BASE_URL": server_url,
            "NATS_URL": nats_url,
            "NOETL_INTERNAL_API_TOKEN": INTERNAL,
            "NOETL_AUTH0_DOMAIN": DOMAIN,
            "NOETL_AUTH0_AUDIENCE": AUDIENCE,
            "NOETL_AUTH_JWKS_URL": jwks_url,
            "GATEWAY_AUTH_RATE_LIMIT_PER_MINUTE": "10000000",
            "GATEWAY_SSE_MAX_CONNECTIONS_PER_SESSION": "100000",
            "NOETL_LOG_LEVEL": "warning",
            "LOG_LEVEL": "warning",
        }
    )
    with process([sys.executable, "-m", "app", "gateway"], port, "/health", env=e) as url:
        yield url


@contextmanager
def baseline(nats_url: str | None) -> Iterator[str]:
    """A bare aiohttp validate handler (optionally with one K/V get) in a subprocess."""
    port = free_port()
    argv = [sys.executable, str(ROOT / "bench" / "_baseline_gateway.py"), str(port)]
    with process(argv + ([nats_url] if nats_url else []), port, "/health") as url:
        yield url


async def validate_calls(http: aiohttp.ClientSession, server_url: str) -> float:
    """How many times the server's session-validate route has been called."""
    async with http.get(f"{server_url}/metrics") as r:
        text = await r.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("noetl_http_requests_total") and '"/api/auth/session/validate"' in line
    )


async def paced(rate: float, seconds: float, call, budget: float) -> tuple[int, list[float], float]:  # type: ignore[no-untyped-def]
    """Open loop: start call() every 1/rate s for `seconds`; bounded by count and `budget` seconds."""
    n = int(rate * seconds)
    lat: list[float] = []
    errors = 0
    tasks: set[asyncio.Task[None]] = set()

    async def one() -> None:
        nonlocal errors
        t = time.perf_counter()
        try:
            await call()
        except Exception:
            errors += 1
            return
        lat.append(time.perf_counter() - t)

    start = time.perf_counter()
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=budget)
    return errors, lat, time.perf_counter() - start


async def bench_validate(
    gw_url: str, server_url: str | None, token: str, rate: float, seconds: float, label: str
) -> None:
    conn = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=conn) as http:
        body = {"session_token": token}

        async def call() -> None:
            async with http.post(f"{gw_url}/api/auth/validate", json=body) as r:
                out = await r.json()
                if r.status != 200 or out.get("valid") is not True:
                    raise RuntimeError(f"validate failed: {r.status}")

        for _ in range(200):  # warm up the connection pool and the code paths
            await call()
        before = await validate_calls(http, server_url) if server_url else 0.0
        errors, lat, elapsed = await paced(rate, seconds, call, budget=30)
        after = await validate_calls(http, server_url) if server_url else 0.0
    calls = f"; server validate calls during the run: {after - before:.0f}" if server_url else ""
    print(
        f"{label}, {rate:,.0f} req/s offered for {seconds:.0f} s: {len(lat)} ok, {errors} errors,"
        f" {len(lat) / elapsed:,.0f} req/s achieved; p50 {pct(lat, 50):.2f} ms  p99 {pct(lat, 99):.2f} ms"
        f"  max {pct(lat, 100):.2f} ms{calls}",
        flush=True,
    )


class SseReader:
    """One /events stream; records publish→parse latency for frames whose id is a published event id."""

    def __init__(self, sent: dict[int, float], lat: list[float]) -> None:
        self.sent = sent
        self.lat = lat
        self.ready = asyncio.Event()

    async def run(self, http: aiohttp.ClientSession, url: str) -> None:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as r:
            frame_id = None
            async for raw in r.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: message"):
                    self.ready.set()
                elif line.startswith("id: "):
                    frame_id = line[4:]
                elif line.startswith("event: playbook/state") and frame_id is not None:
                    t = self.sent.get(int(frame_id))
                    if t is not None:
                        self.lat.append(time.time() - t)
                elif not line:
                    frame_id = None


async def bench_fanout(
    gw_url: str, nats_url: str, token: str, clients: int, rate: float, seconds: float
) -> None:
    run = uuid.uuid4().hex[:8]
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    kv = await js.key_value("requests")
    execs = [str(9_000_000_000 + i) for i in range(clients)]
    cids = [f"bench-{run}-{i}" for i in range(clients)]
    for eid, cid in zip(execs, cids, strict=True):
        # The entries GraphQL executePlaybook writes (gateway.md §7.2), as another replica would.
        rid = str(uuid.uuid4())
        entry = {
            "client_id": cid,
            "session_hash": token_hash(token),
            "execution_id": eid,
            "playbook_path": "bench/sse",
            "callback_token_sha256": "0" * 64,
            "created_at": int(time.time()),
        }
        await kv.put(f"req.{rid}", json.dumps(entry).encode())
        await kv.put(f"exec.{eid}.{rid}", rid.encode())
        await kv.put(f"creq.{cid}.{rid}", rid.encode())
    sent: dict[int, float] = {}
    lat: list[float] = []
    readers = [SseReader(sent, lat) for _ in cids]
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    tasks = [
        asyncio.create_task(rd.run(http, f"{gw_url}/events?session_token={token}&client_id={cid}"))
        for rd, cid in zip(readers, cids, strict=True)
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*(rd.ready.wait() for rd in readers)), 60)
        await asyncio.sleep(1.0)  # let the gateway's request-index watch catch up with the new keys
        n = int(rate * seconds)
        tick = 0.01
        per_tick = max(1, round(rate * tick))
        start = time.perf_counter()
        for i in range(0, n, per_tick):
            delay = start + (i / rate) - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            for j in range(i, min(n, i + per_tick)):
                eid = execs[j % clients]
                ev = {"event_id": j + 1, "event_type": "step.exit", "execution_id": eid, "step_name": "s"}
                sent[j + 1] = time.time()
                await nc.publish(f"noetl.events.bench.bench.{eid}.0", json.dumps(ev).encode())
        publish_s = time.perf_counter() - start
        deadline = time.monotonic() + 10
        while len(lat) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        print(
            f"SSE fan-out, {clients} clients, {rate:,.0f} events/s for {seconds:.0f} s ({n} events, published in"
            f" {publish_s:.2f} s): {len(lat)} delivered ({n - len(lat)} missing); delivery p50 {pct(lat, 50):.1f} ms"
            f"  p95 {pct(lat, 95):.1f} ms  p99 {pct(lat, 99):.1f} ms  max {pct(lat, 100):.1f} ms",
            flush=True,
        )
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await http.close()
        await nc.close()


async def main_async(args: argparse.Namespace, dsn: str, nats_url: str) -> None:
    async with fake_auth0() as fake:
        with (
            server(
                dsn,
                nats_url,
                NOETL_INTERNAL_API_TOKEN=INTERNAL,
                NOETL_AUTH0_DOMAIN=DOMAIN,
                NOETL_AUTH0_AUDIENCE=AUDIENCE,
                NOETL_AUTH_JWKS_URL=fake.jwks_url,
            ) as server_url,
            gateway(server_url, nats_url, fake.jwks_url) as gw_url,
        ):
            async with (
                aiohttp.ClientSession() as http,
                http.post(f"{gw_url}/api/auth/login", json={"auth0_token": fake.token()}) as r,
            ):
                out = await r.json()
                assert r.status == 200, out
            token = out["session_token"]
            if not args.skip_validate:
                await bench_validate(
                    gw_url, server_url, token, args.rate, args.seconds, "gateway validate (cache hit)"
                )
                with baseline(None) as url:
                    await bench_validate(
                        url, None, token, args.rate, args.seconds, "baseline: bare aiohttp handler"
                    )
                with baseline(nats_url) as url:
                    await bench_validate(
                        url, None, token, args.rate, args.seconds, "baseline: aiohttp + one K/V get"
                    )
            if not args.skip_sse:
                await bench_fanout(gw_url, nats_url, token, args.clients, args.events_rate, args.seconds)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=1000.0, help="validate requests per second (offered)")
    p.add_argument("--seconds", type=float, default=10.0, help="duration of each paced run")
    p.add_argument("--clients", type=int, default=200, help="SSE streams")
    p.add_argument("--events-rate", type=float, default=1000.0, help="mirror events published per second")
    p.add_argument("--skip-validate", action="store_true")
    p.add_argument("--skip-sse", action="store_true")
    args = p.parse_args()
    args.seconds = min(args.seconds, 120.0)
    print(f"machine: {machine()}", flush=True)
    with services() as (dsn, nats_url):
        asyncio.run(main_async(args, dsn, nats_url))


if __name__ == "__main__":
    main()
