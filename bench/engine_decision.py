"""Benchmark: one decide() for a 50-step playbook with ~1,000 prior events, from cached state.

Run: .venv/bin/python bench/engine_decision.py
"""

from __future__ import annotations

import copy
import itertools
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.domain.engine import NewCommand, decide, start
from app.domain.playbook import parse_playbook

NOW = datetime(2026, 1, 1, tzinfo=UTC)
N_STEPS = 50


def build_yaml() -> str:
    lines = [
        "apiVersion: noetl.io/v2",
        "kind: Playbook",
        "metadata: {name: bench, path: bench/p}",
        "workload: {items: [1, 2, 3], base: 10}",
        "workflow:",
    ]
    for i in range(N_STEPS):
        nxt = f"s{i + 1}" if i + 1 < N_STEPS else "end"
        lines += [
            f"  - step: s{i}",
            '    tool: {kind: python, input: {v: "{{ base + '
            + str(i)
            + ' }}", prev: "{{ s'
            + str(max(i - 1, 0))
            + ".v | default(0) }}\"}, code: 'result = 1'}",
            '    set: {ctx.last: "{{ s' + str(i) + '.v }}"}',
            "    next: {arcs: [{step: " + nxt + ', when: "{{ ctx.last >= 0 }}"}]}',
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    pb, _ = parse_playbook(build_yaml())
    ids = itertools.count(1_000_000)
    d = start(
        pb,
        execution_id=1,
        catalog_id=2,
        path="bench/p",
        version=1,
        server_url="http://cp",
        next_id=lambda: next(ids),
        now=NOW,
    )
    state, pending = d.state, list(d.commands)
    n_events = len(d.events)

    def completion(cmd: NewCommand, i: int) -> list[dict]:
        payload = {
            "command_id": str(cmd.command_id),
            "result": {"status": "ok", "context": {"v": i, "pad": "x" * 200}},
        }
        base = {"node_name": cmd.step, "meta": {"command_id": cmd.command_id}, "command_id": cmd.command_id}
        return [
            {
                **base,
                "event_id": next(ids),
                "event_type": ev,
                "status": st,
                "result": {"status": st, "context": p},
            }
            for ev, st, p in (
                ("command.claimed", "RUNNING", {"command_id": str(cmd.command_id)}),
                ("command.started", "RUNNING", {"command_id": str(cmd.command_id)}),
                ("command.heartbeat", "RUNNING", {"command_id": str(cmd.command_id)}),
                ("call.done", "COMPLETED", payload),
                ("command.completed", "COMPLETED", {"command_id": str(cmd.command_id)}),
            )
        ]

    # drive the first 48 steps: ~1,000 prior events
    for i in range(N_STEPS - 2):
        cmd = pending.pop(0)
        for row in completion(cmd, i)[:-1]:
            state = decide(pb, state, row, server_url="http://cp", next_id=lambda: next(ids), now=NOW).state
            n_events += 1
        pad = 0
        while n_events < (i + 1) * 20.5:  # extra heartbeats to reach ~1,000 events
            hb = completion(cmd, i)[2]
            state = decide(pb, state, hb, server_url="http://cp", next_id=lambda: next(ids), now=NOW).state
            n_events += 1
            pad += 1
        dd = decide(
            pb, state, completion(cmd, i)[-1], server_url="http://cp", next_id=lambda: next(ids), now=NOW
        )
        state = dd.state
        pending += dd.commands
        n_events += 1 + len(dd.events)
    cmd = pending.pop(0)
    rows = completion(cmd, 99)
    for row in rows[:-1]:
        state = decide(pb, state, row, server_url="http://cp", next_id=lambda: next(ids), now=NOW).state
        n_events += 1
    trigger = rows[-1]
    cached = copy.deepcopy(state)
    times = []
    for _ in range(2000):
        t0 = time.perf_counter()
        out = decide(pb, cached, trigger, server_url="http://cp", next_id=lambda: next(ids), now=NOW)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    med = statistics.median(times)
    p95 = times[int(len(times) * 0.95)]
    print(
        f"steps={N_STEPS} prior_events={n_events} new_events={len(out.events)} commands={len(out.commands)}"
    )
    print(
        f"decide(): median={med:.3f} ms  p95={p95:.3f} ms  runs={len(times)}  target median<2ms "
        f"{'PASS' if med < 2 else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
