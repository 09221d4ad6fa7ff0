"""Replay benchmark (issue: internal operations; target >= 50,000 events/s).

Real executions are run through the server (a small in-bench worker claims over HTTP and posts the events the
project's worker posts), their log is cloned under new execution ids until it holds --events rows, then
`projections.replay.replay` rebuilds every projection (read models + noetl.command + noetl.execution).
Baseline in the same run: streaming the same rows through the same cursor without folding or writing.

Run:  .venv/bin/python bench/replay_bench.py [--events 200000]
Everything binds 127.0.0.1; every loop is bounded in count and time."""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.db.pool import connect
from app.ids import SnowflakeGenerator
from bench._stack import machine, server, services, summary
from projections.replay import STREAM_SQL, replay

PLAYBOOK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: bench, path: bench/replay}
workflow:
  - step: start
    tool: {kind: noop}
    next: {arcs: [{step: a}]}
  - step: a
    tool: {kind: noop}
    next: {arcs: [{step: b}]}
  - step: b
    tool: {kind: noop}
"""


async def run_executions(url: str, dsn: str, n: int) -> None:
    """Start n executions and complete their commands over HTTP until all are terminal (bounded)."""
    ids = SnowflakeGenerator(7)
    pool = await asyncpg.create_pool(dsn, server_settings={"search_path": "noetl"}, min_size=1, max_size=2)
    async with aiohttp.ClientSession() as http:
        r = await http.post(
            f"{url}/api/catalog/register", json={"content": base64.b64encode(PLAYBOOK.encode()).decode()}
        )
        assert r.status == 200, await r.text()
        for _ in range(n):
            async with http.post(f"{url}/api/execute", json={"path": "bench/replay"}) as resp:
                assert resp.status == 200, await resp.text()

        async def complete(event_id: int) -> None:
            async with http.post(f"{url}/api/commands/{event_id}/claim", json={"worker_id": "bench"}) as c:
                if c.status != 200:
                    return
                claim = await c.json()
            cid = claim["meta"]["command_id"]
            common = {"execution_id": claim["execution_id"], "step": claim["node_name"], "worker_id": "bench"}
            for etype, payload in (
                ("command.started", {"command_id": str(cid)}),
                ("call.done", {"command_id": str(cid), "call_index": 0, "result": {"status": "ok"}}),
                ("command.completed", {"command_id": str(cid), "status": "success"}),
            ):
                body = {**common, "event_type": etype, "event_id": ids.next_id(), "payload": payload}
                body["meta"] = {"command_id": cid, "attempts": 1}
                async with http.post(f"{url}/api/events", json=body) as e:
                    assert e.status == 200, await e.text()

        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            pending = [
                r["event_id"]
                for r in await pool.fetch("SELECT event_id FROM command WHERE status = 'PENDING'")
            ]
            if not pending:
                break
            await asyncio.gather(*(complete(e) for e in pending))
        left = await pool.fetchval("SELECT count(*) FROM execution WHERE status = 'RUNNING'")
        assert left == 0, f"{left} executions still running"
    await pool.close()


async def clone_log(dsn: str, target: int) -> int:
    """Copy the log and execution rows under shifted execution ids until about `target` events."""
    conn = await connect(dsn, "noetl")
    orig = [int(r["execution_id"]) for r in await conn.fetch("SELECT execution_id FROM execution")]
    base = int(await conn.fetchval("SELECT count(*) FROM event"))
    copies = max(0, target // max(base, 1) - 1)

    async def columns(table: str, skip: tuple[str, ...]) -> str:
        rows = await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'noetl' "
            "AND table_name = $1 ORDER BY ordinal_position",
            table,
        )
        return ", ".join(r["column_name"] for r in rows if r["column_name"] not in skip)

    ev_cols = await columns("event", ("execution_id", "seq"))
    ex_cols = await columns("execution", ("execution_id",))
    # Shifts of k keep each copy inside its original's event partition (a range of execution_id) and never
    # collide: snowflake ids of different executions are millions apart.
    for k in range(1, copies + 1):
        await conn.execute(
            f"INSERT INTO event (execution_id, {ev_cols}, seq) SELECT execution_id + $2, {ev_cols}, "
            "nextval('event_seq') FROM event WHERE execution_id = ANY($1::bigint[]) ORDER BY execution_id, seq",
            orig,
            k,
        )
        await conn.execute(
            f"INSERT INTO execution (execution_id, {ex_cols}) SELECT execution_id + $2, {ex_cols} "
            "FROM execution WHERE execution_id = ANY($1::bigint[])",
            orig,
            k,
        )
    total = int(await conn.fetchval("SELECT count(*) FROM event"))
    await conn.close()
    return total


async def baseline(dsn: str) -> float:
    """Seconds to stream every event row through the replay's cursor, folding and writing nothing."""
    conn = await connect(dsn, "noetl")
    start = time.perf_counter()
    n = 0
    async with conn.transaction():
        async for _ in conn.cursor(STREAM_SQL.format(where=""), prefetch=5000):
            n += 1
    elapsed = time.perf_counter() - start
    await conn.close()
    return elapsed


async def measure(dsn: str, target: int) -> None:
    total = await clone_log(dsn, target)
    conn = await connect(dsn, "noetl")
    report = await replay(conn)
    await conn.close()
    ours = summary("replay (all projections)", report.events, report.seconds)
    conn = await connect(dsn, "noetl")
    report_rm = await replay(conn, "execution_summary")
    await conn.close()
    summary("replay --projection execution_summary", report_rm.events, report_rm.seconds)
    base = summary("  baseline: stream the same rows, no fold", total, await baseline(dsn))
    print(f"  executions: {report.executions}; ratio: {ours['rate'] / base['rate']:.2f} of streaming")
    print(f"  target >= 50,000 events/s: {'met' if ours['rate'] >= 50000 else 'NOT met'}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--executions", type=int, default=50)
    p.add_argument("--events", type=int, default=200_000)
    args = p.parse_args()
    print(machine(), flush=True)
    with services() as (dsn, _nats_url):
        with server(dsn, None) as url:
            asyncio.run(run_executions(url, dsn, args.executions))
        asyncio.run(measure(dsn, args.events))


if __name__ == "__main__":
    main()
