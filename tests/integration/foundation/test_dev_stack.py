"""The dev stack starts every role on embedded services and leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from app.devstack.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _wait_file(path: Path, proc: subprocess.Popen[bytes], timeout: float) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return json.loads(path.read_text())
        if proc.poll() is not None:
            raise AssertionError(f"dev exited early with {proc.returncode}")
        time.sleep(0.1)
    raise AssertionError("stack.json never appeared")


def test_dev_stack_starts_and_stops_cleanly(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NOETL_", "POSTGRES_", "NATS_", "WORKER_")) and k != "DATABASE_URL"
    }
    port, gw = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app",
            "dev",
            "--data-dir",
            str(tmp_path / "dev"),
            "--port",
            str(port),
            "--gateway-port",
            str(gw),
            "--workers",
            "1",
            "--no-demo",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        info = _wait_file(tmp_path / "dev" / "stack.json", proc, 120)
        assert info["api_url"] == f"http://127.0.0.1:{port}"
        assert info["database_url"].startswith("postgresql://") and info["nats_url"].startswith("nats://")
        with urllib.request.urlopen(f"{info['api_url']}/readyz", timeout=5) as r:
            assert r.status == 200
        url = f"{info['api_url']}/api/runtime/shard-info?execution_id=325&shard_count=8"
        with urllib.request.urlopen(url, timeout=5) as r:
            assert json.loads(r.read())["shard_index"] == 4
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children, "the supervisor runs its roles as child processes"
        pg_pids = [
            p.pid
            for p in psutil.process_iter(["cmdline"])
            if str(tmp_path) in " ".join(p.info["cmdline"] or [])
        ]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert proc.returncode == 0
    leftovers = [
        p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])
    ]
    assert not leftovers, f"orphans: {[p.info['cmdline'] for p in leftovers]}"
    for c in children:
        assert not psutil.pid_exists(c.pid) or psutil.Process(c.pid).status() == psutil.STATUS_ZOMBIE
    assert pg_pids, "embedded postgres ran under the data dir"
    assert not (tmp_path / "dev" / "stack.json").exists()


def test_dev_stack_demo_completes_with_real_workers(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NOETL_", "POSTGRES_", "NATS_", "WORKER_")) and k != "DATABASE_URL"
    }
    port, gw = free_port(), free_port()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "dev",
            "--data-dir",
            str(tmp_path / "dev"),
            "--port",
            str(port),
            "--gateway-port",
            str(gw),
            "--exit-after-demo",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=150,
    )
    text = out.stdout.decode(errors="replace")
    assert out.returncode == 0, text[-3000:]
    assert "COMPLETED; steps ['start', 'square', 'end']" in text
    assert '"sum_of_squares": 14' in text
    leftovers = [
        p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])
    ]
    assert not leftovers, f"orphans: {[p.info['cmdline'] for p in leftovers]}"
