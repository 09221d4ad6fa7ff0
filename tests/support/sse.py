"""A small SSE client for tests: reads one /events stream into a list of parsed frames."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp

from tests.support.wait import eventually


class SseClient:
    """Collects frames {event, id, data} of one stream in a background task until closed."""

    __test__ = False

    def __init__(self, http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> None:
        self.http, self.url, self.headers = http, url, headers or {}
        self.frames: list[dict[str, Any]] = []
        self.comments = 0
        self.status = 0
        self.ended = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SseClient:
        self._resp = await self.http.get(
            self.url, headers=self.headers, timeout=aiohttp.ClientTimeout(total=60)
        )
        self.status = self._resp.status
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._resp.close()

    async def _read(self) -> None:
        frame: dict[str, Any] = {}
        try:
            async for raw in self._resp.content:
                line = raw.decode().rstrip("\r\n")
                if not line:
                    if "data" in frame:
                        frame["data"] = json.loads(frame["data"])
                        self.frames.append(frame)
                    frame = {}
                elif line.startswith(":"):
                    self.comments += 1
                else:
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    frame[name] = frame[name] + "\n" + value if name == "data" and name in frame else value
        finally:
            self.ended.set()

    def of(self, event: str) -> list[dict[str, Any]]:
        """Frames of one event name."""
        return [f for f in self.frames if f.get("event") == event]

    async def wait_for(self, predicate: Any, timeout: float = 20.0, what: str = "frame") -> dict[str, Any]:
        """The first frame matching predicate, polled with a deadline."""

        async def check() -> dict[str, Any] | None:
            return next((f for f in self.frames if predicate(f)), None)

        return await eventually(check, timeout=timeout, what=what)  # type: ignore[no-any-return]
