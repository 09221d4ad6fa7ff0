"""The `python` tool (playbook-dsl §2.3.1): the step's code runs in a warm out-of-process runner."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from app.worker.pypool import PythonPool, RunnerCancelled, RunnerDied, RunnerTimeout
from app.worker.tools.base import ToolCancelled, ToolContext, ToolError

DEFAULT_TIMEOUT = 180.0
_pool: PythonPool | None = None


def configure(pool: PythonPool) -> None:
    """Install the worker's runner pool (the runtime calls it at start)."""
    global _pool
    _pool = pool


def get_pool() -> PythonPool:
    """The configured pool, or a small default one (unit tests, ad-hoc use)."""
    global _pool
    if _pool is None:
        _pool = PythonPool(size=2)
    return _pool


async def shutdown() -> None:
    """Kill every runner of the installed pool."""
    global _pool
    if _pool is not None:
        await _pool.close()
        _pool = None


def _code(config: dict[str, Any]) -> str:
    for key in ("code_b64", "code_base64"):
        if config.get(key):
            return base64.b64decode(str(config[key])).decode()
    if isinstance(config.get("code"), str):
        return str(config["code"])
    script = config.get("script")
    if isinstance(script, dict):
        raw_source = script.get("source")
        source: dict[str, Any] = raw_source if isinstance(raw_source, dict) else {}
        kind = str(source.get("type") or "inline")
        if kind == "inline" and source.get("code"):
            return str(source["code"])
        if kind == "file":
            uri = str(source.get("path") or script.get("uri") or "")
            return Path(uri.removeprefix("file://")).read_text()
        raise ToolError(f"python script source type '{kind}' is not supported by this worker")
    raise ToolError("python tool needs `code` (or `script`)")


def _timeout(config: dict[str, Any], ctx: ToolContext) -> float:
    for value in (config.get("timeout_seconds"), config.get("timeout")):
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    return ctx.timeout_seconds or DEFAULT_TIMEOUT


async def run(config: dict[str, Any], ctx: ToolContext) -> Any:
    """Run the code; the result is `result`, `main()`'s value or a top-level return (§2.3.1)."""
    inputs = config.get("input")
    if not isinstance(inputs, dict):
        inputs = config.get("args") if isinstance(config.get("args"), dict) else {}
    job = {
        "code": _code(config),
        "input": inputs,
        "context": dict(ctx.render_context),
        "libs": config.get("libs") or {},
        "env": config.get("env") if isinstance(config.get("env"), dict) else {},
        "cwd": config.get("cwd") or None,
    }
    timeout = _timeout(config, ctx)
    try:
        answer = await get_pool().run(job, timeout=timeout, cancelled=ctx.cancelled)
    except RunnerCancelled:
        raise ToolCancelled() from None
    except RunnerTimeout:
        raise ToolError(f"python step timed out after {timeout:g}s", code="timeout") from None
    except RunnerDied as exc:
        raise ToolError(
            f"python step was killed ({exc}); it may have exceeded its memory limit", code="killed"
        ) from None
    if answer.get("ok"):
        return answer.get("result")
    raise ToolError(
        str(answer.get("error") or "python step failed"),
        data={
            "stdout": answer.get("stdout", ""),
            "stderr": answer.get("stderr", ""),
            "traceback": answer.get("traceback", ""),
        },
        code=str(answer.get("code") or "exception"),
    )
