"""A warm pool of python-tool runner subprocesses (app/worker/pyrunner.py), reused between steps.

A runner that times out, overruns its memory, is cancelled or dies is killed and replaced, so the
worker stays up and the next step still finds a warm interpreter."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RUNNER = Path(__file__).with_name("pyrunner.py")


class RunnerDied(Exception):
    """The runner process ended before answering (killed by the kernel, crashed, exited)."""


class RunnerTimeout(Exception):
    """The job did not finish within its timeout."""


class RunnerCancelled(Exception):
    """The job was cancelled (execution cancellation) and its runner killed."""


class Runner:
    """One runner subprocess and its framed pipe protocol."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.jobs = 0

    @classmethod
    async def start(cls, memory_mb: int) -> Runner:
        """Spawn a runner (isolated mode, own session so a kill reaches its children)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            str(RUNNER),
            str(memory_mb),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        return cls(proc)

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.returncode is None

    async def call(self, job: dict[str, Any]) -> dict[str, Any]:
        """Send one job and read its answer."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        data = json.dumps(job, default=str).encode()
        self.jobs += 1
        try:
            self.proc.stdin.write(struct.pack(">I", len(data)) + data)
            await self.proc.stdin.drain()
            head = await self.proc.stdout.readexactly(4)
            (size,) = struct.unpack(">I", head)
            body = await self.proc.stdout.readexactly(size)
        except (asyncio.IncompleteReadError, BrokenPipeError, ConnectionResetError) as exc:
            raise RunnerDied(str(exc)) from exc
        answer: dict[str, Any] = json.loads(body)
        return answer

    async def kill(self) -> None:
        """Kill the runner and whatever it started."""
        if self.alive:
            import os
            import signal

            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.proc.wait(), 5)


class PythonPool:
    """At most `size` runners busy at once; idle runners are kept warm for the next job."""

    def __init__(self, size: int = 4, memory_mb: int = 1024, max_jobs_per_runner: int = 10_000) -> None:
        self.size = max(1, size)
        self.memory_mb = memory_mb
        self.max_jobs = max_jobs_per_runner
        self._idle: list[Runner] = []
        self._sem = asyncio.Semaphore(self.size)
        self._all: set[Runner] = set()
        self._closed = False
        self.replaced = 0

    async def warm(self, count: int | None = None) -> None:
        """Start idle runners ahead of the first job."""
        n = min(self.size, count if count is not None else self.size) - len(self._idle)
        runners = await asyncio.gather(*(Runner.start(self.memory_mb) for _ in range(max(0, n))))
        for r in runners:
            self._all.add(r)
            self._idle.append(r)

    async def _take(self) -> Runner:
        while self._idle:
            r = self._idle.pop()
            if r.alive:
                return r
            self._all.discard(r)
        r = await Runner.start(self.memory_mb)
        self._all.add(r)
        return r

    def _give_back(self, r: Runner) -> None:
        if self._closed or not r.alive or r.jobs >= self.max_jobs:
            asyncio.get_running_loop().create_task(self._discard(r))
        else:
            self._idle.append(r)

    async def _discard(self, r: Runner) -> None:
        self._all.discard(r)
        await r.kill()

    async def run(
        self, job: dict[str, Any], *, timeout: float | None, cancelled: asyncio.Event | None = None
    ) -> dict[str, Any]:
        """Run a job on a warm runner; kill+replace it on timeout, cancellation, death or taint."""
        async with self._sem:
            r = await self._take()
            call = asyncio.ensure_future(r.call(job))
            waiters: set[asyncio.Future[Any]] = {call}
            cancel_wait: asyncio.Future[Any] | None = None
            if cancelled is not None:
                cancel_wait = asyncio.ensure_future(cancelled.wait())
                waiters.add(cancel_wait)
            try:
                done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            except BaseException:
                call.cancel()
                await self._replace(r)
                raise
            finally:
                if cancel_wait is not None:
                    cancel_wait.cancel()
            if call not in done:
                call.cancel()
                await self._replace(r)
                if cancel_wait is not None and cancel_wait in done:
                    raise RunnerCancelled()
                raise RunnerTimeout()
            try:
                answer = call.result()
            except RunnerDied:
                rc = r.proc.returncode
                await self._replace(r)
                raise RunnerDied(f"python runner exited (code {rc})") from None
            if answer.get("tainted"):
                await self._replace(r)
            else:
                self._give_back(r)
            return answer

    async def _replace(self, r: Runner) -> None:
        self.replaced += 1
        await self._discard(r)
        if not self._closed and len(self._idle) < self.size:
            with contextlib.suppress(Exception):
                fresh = await Runner.start(self.memory_mb)
                self._all.add(fresh)
                self._idle.append(fresh)

    async def close(self) -> None:
        """Kill every runner."""
        self._closed = True
        runners = list(self._all)
        self._idle.clear()
        self._all.clear()
        await asyncio.gather(*(r.kill() for r in runners), return_exceptions=True)
