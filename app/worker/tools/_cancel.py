"""Run a tool's awaitable until it finishes, the execution is cancelled, or a deadline passes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from app.worker.tools.base import ToolCancelled, ToolContext, ToolError

T = TypeVar("T")


async def cancellable(aw: Awaitable[T], ctx: ToolContext, timeout: float | None = None) -> T:
    """Await `aw`; on ctx.cancelled cancel it and raise ToolCancelled, on timeout raise ToolError(timeout).

    Cancelling the inner task is what aborts the work: aiohttp closes the connection, asyncpg sends a
    cancel request for the running query."""
    if ctx.cancelled.is_set():
        raise ToolCancelled()
    task = asyncio.ensure_future(aw)
    waiter = asyncio.ensure_future(ctx.cancelled.wait())
    try:
        done, _ = await asyncio.wait({task, waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
    finally:
        waiter.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
    if ctx.cancelled.is_set():
        raise ToolCancelled()
    raise ToolError(f"timed out after {timeout:g}s", code="timeout")


def seconds(value: object) -> float | None:
    """A positive number of seconds from a config value (number or numeric string), else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) if value > 0 else None
    if isinstance(value, str):
        text = value.strip().lower()
        scale = 1.0
        for suffix, mult in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
            if text.endswith(suffix):
                text, scale = text[: -len(suffix)].strip(), mult
                break
        try:
            v = float(text) * scale
        except ValueError:
            return None
        return v if v > 0 else None
    return None
