"""The project's real worker for e2e tests: in-process (asyncio task) or as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from app.config import Settings, WorkerSettings
from app.worker.runtime import WorkerRuntime
from tests.support.server import make_settings

ROOT = Path(__file__).resolve().parents[2]


def worker_env(db_dsn: str, nats_url: str, server_url: str, **env: str) -> dict[str, str]:
    """The env a worker of this test runs with (unique durable and id)."""
    base = {
        "NATS_URL": nats_url,
        "NOETL_SERVER_URL": server_url,
        "WORKER_ID": f"wr-{uuid.uuid4().hex[:8]}",
        "WORKER_POOL_NAME": "shared",
        "NATS_CONSUMER": f"wr_{uuid.uuid4().hex[:8]}",
        "NOETL_FEED_FILTER_SUBJECT": "noetl.commands.shared.>",
        "NOETL_WORKER_CANCEL_POLL_SECONDS": "0.3",
        "WORKER_HEARTBEAT_INTERVAL": "1",
        "NOETL_WORKER_PYTHON_MEMORY_MB": "512",
        "WORKER_MAX_CONCURRENT": "4",
    }
    base.update(env)
    return base


def worker_settings(db_dsn: str, nats_url: str, server_url: str, **env: str) -> Settings:
    """Settings for an in-process worker (the worker group is lazy, so it is built from the env here)."""
    wenv = worker_env(db_dsn, nats_url, server_url, **env)
    settings = make_settings(db_dsn, nats_url, **wenv)
    settings.__dict__["worker"] = WorkerSettings(**wenv)  # type: ignore[arg-type]
    return settings


@asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[WorkerRuntime]:
    """A real worker in this event loop; stopped (drained, deregistered) on exit."""
    rt = WorkerRuntime(settings)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(rt.run(stop, ready))
    done, _ = await asyncio.wait(
        {task, asyncio.ensure_future(ready.wait())}, timeout=30, return_when=asyncio.FIRST_COMPLETED
    )
    if task in done:
        task.result()
    assert ready.is_set(), "worker did not start"
    try:
        yield rt
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 60)


class WorkerProcess:
    """`python -m app worker` as a child process in its own process group."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        full = {k: v for k, v in os.environ.items() if not k.startswith(("NOETL_", "NATS_", "WORKER_"))}
        full.update(env)
        full.pop("DATABASE_URL", None)  # workers never touch the database
        self.env = full
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "worker"],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, *_: Any) -> None:
        import signal

        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
