"""The official `noetl` CLI 5.3.2 drives this server unchanged (server-contract §4.12)."""

from __future__ import annotations

import asyncio
import json
import re
import textwrap
from pathlib import Path

import pytest

from app.loops import SERVER_LOOPS
from tests.support.playbooks import FAILING, LINEAR, wait_terminal
from tests.support.server import make_settings, running_api
from tests.support.test_worker import TestWorker

pytestmark = [pytest.mark.e2e, pytest.mark.cli]

SLOW = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: slow, path: tests/slow}
workflow:
  - step: start
    tool: {kind: noop}
    next: {arcs: [{step: wait}]}
  - step: wait
    tool: {kind: noop}
"""


async def cli(exe: Path, port: int, home: Path, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        str(exe),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, out.decode(errors="replace")


def write(dir_: Path, name: str, text: str) -> Path:
    path = dir_ / name
    path.write_text(textwrap.dedent(text))
    return path


async def test_cli_register_list_load_run_status_cancel(
    db_dsn: str, nats_url: str, noetl_cli: Path, tmp_path: Path
) -> None:
    settings = make_settings(db_dsn, nats_url)
    port = settings.server.port
    home = tmp_path / "home"
    home.mkdir()
    books = tmp_path / "books"
    books.mkdir()
    async with running_api(settings, SERVER_LOOPS) as api, TestWorker(nats_url) as worker:
        rc, out = await cli(
            noetl_cli, port, home, "register", "playbook", "-f", str(write(books, "linear.yaml", LINEAR))
        )
        assert rc == 0, out
        rc, out = await cli(noetl_cli, port, home, "catalog", "list", "Playbook")
        assert rc == 0 and "tests/linear" in out, out
        write(books, "failing.yaml", FAILING)
        write(books, "slow.yaml", SLOW)
        rc, out = await cli(noetl_cli, port, home, "catalog", "load", str(books))
        assert rc == 0, out
        status, listed = await api.post("/api/catalog/list", json={"resource_type": "Playbook"})
        assert {e["path"] for e in listed["entries"]} >= {"tests/linear", "tests/failing", "tests/slow"}

        rc, out = await cli(noetl_cli, port, home, "run", "tests/linear", "-r", "distributed", "--set", "n=7")
        assert rc == 0, out
        eid = re.search(r'"execution_id"\s*:\s*"?(\d+)', out)
        assert eid, out
        final = await wait_terminal(api, eid.group(1))
        assert final["status"] == "COMPLETED"
        first = next(c for c in worker.claims if c["execution_id"] == int(eid.group(1)))
        assert first["context"]["input"]["n"] in (7, "7")
        rc, out = await cli(noetl_cli, port, home, "status", eid.group(1), "--json")
        assert rc == 0, out
        shown = json.loads(out[out.index("{") :])
        assert shown["completed"] is True and shown["completed_steps"] == ["start", "add", "end"]

        rc, out = await cli(noetl_cli, port, home, "run", "tests/failing", "-r", "distributed")
        failed_id = re.search(r'"execution_id"\s*:\s*"?(\d+)', out).group(1)  # type: ignore[union-attr]
        await wait_terminal(api, failed_id)
        rc, out = await cli(noetl_cli, port, home, "status", failed_id)
        assert rc == 0 and "FAILED" in out.upper() and "kaboom" in out, out

        worker.hold.clear()  # stop taking work so the next run stays RUNNING
        rc, out = await cli(noetl_cli, port, home, "run", "tests/slow", "-r", "distributed")
        slow_id = re.search(r'"execution_id"\s*:\s*"?(\d+)', out).group(1)  # type: ignore[union-attr]
        rc, out = await cli(noetl_cli, port, home, "cancel", slow_id, "--reason", "test", "--cascade")
        assert rc == 0 and slow_id in out, out
        _, st = await api.get(f"/api/executions/{slow_id}/status")
        assert st["status"] == "CANCELLED" and st["is_cancelled"] is True
        rc, out = await cli(noetl_cli, port, home, "cancel", slow_id)
        assert rc == 0, out
