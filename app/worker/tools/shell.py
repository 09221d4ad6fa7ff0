"""The `shell` tool (playbook-dsl §2.3.5): `sh -c` programs in order, stop at the first non-zero exit."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from typing import Any

from app.worker.tools.base import ToolCancelled, ToolContext, ToolError

DEFAULT_TIMEOUT = 600.0
MAX_OUTPUT = 1 << 20


def _programs(config: dict[str, Any]) -> list[str]:
    cmds = config.get("cmds")
    if isinstance(cmds, str):
        return [cmds]
    if isinstance(cmds, list) and cmds:
        return [str(c) for c in cmds]
    for key in ("command", "cmd"):
        value = config.get(key)
        if isinstance(value, str) and value.strip():
            return [value]
        if isinstance(value, list) and value:
            return [str(c) for c in value]
    raise ToolError("shell tool needs `cmds`, `command` or `cmd`")


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def _one(
    cmd: str, env: dict[str, str], cwd: str | None, timeout: float, ctx: ToolContext
) -> dict[str, Any]:
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        "sh",
        "-c",
        cmd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    comm = asyncio.ensure_future(proc.communicate())
    cancel = asyncio.ensure_future(ctx.cancelled.wait())
    try:
        done, _ = await asyncio.wait({comm, cancel}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        _kill(proc)
        raise
    finally:
        cancel.cancel()
    if comm not in done:
        _kill(proc)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(comm, 5)
        if ctx.cancelled.is_set():
            raise ToolCancelled()
        raise ToolError(f"shell command timed out after {timeout:g}s: {cmd[:80]}", code="timeout")
    out, err = comm.result()
    return {
        "cmd_preview": cmd[:200],
        "returncode": proc.returncode,
        "stdout": out[-MAX_OUTPUT:].decode(errors="replace"),
        "stderr": err[-MAX_OUTPUT:].decode(errors="replace"),
        "duration_ms": int((time.monotonic() - started) * 1000),
    }


async def run(config: dict[str, Any], ctx: ToolContext) -> Any:
    """Run each program; result `{returncode, stdout, stderr, commands, duration_ms}`; non-zero → error."""
    programs = _programs(config)
    env = dict(os.environ)
    if isinstance(config.get("env"), dict):
        env.update({str(k): str(v) for k, v in config["env"].items()})
    cwd = str(config["cwd"]) if config.get("cwd") else None
    raw_timeout = config.get("timeout_seconds", config.get("timeout"))
    timeout = (
        float(raw_timeout)
        if isinstance(raw_timeout, int | float) and not isinstance(raw_timeout, bool) and raw_timeout > 0
        else DEFAULT_TIMEOUT
    )
    started = time.monotonic()
    runs: list[dict[str, Any]] = []
    for cmd in programs:
        runs.append(await _one(cmd, env, cwd, timeout, ctx))
        if runs[-1]["returncode"] != 0:
            break
    last = runs[-1]
    result = {
        "returncode": last["returncode"],
        "stdout": "".join(r["stdout"] for r in runs),
        "stderr": "".join(r["stderr"] for r in runs),
        "commands": runs,
        "duration_ms": int((time.monotonic() - started) * 1000),
    }
    if last["returncode"] != 0:
        tail = (last["stderr"] or last["stdout"]).strip()[-300:]
        raise ToolError(
            f"shell command exited with {last['returncode']}: {last['cmd_preview'][:80]}"
            + (f": {tail}" if tail else ""),
            data=result,
            code="nonzero_exit",
        )
    return result
