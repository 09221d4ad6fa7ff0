"""A minimal ServerApi over aiohttp for tool tests (no retries); the worker runtime's api.py replaces it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp


class ApiError(Exception):
    """A non-2xx answer from the server: `status` is the HTTP status, `body` the decoded error body."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"server answered {status}")
        self.status = status
        self.body = body


class SimpleApi:
    """GET/POST JSON against one server base URL; raises ApiError on non-2xx."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url.rstrip("/")
        self.http: aiohttp.ClientSession | None = None
        self.calls: list[tuple[str, str]] = []

    async def __aenter__(self) -> SimpleApi:
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.http is not None:
            await self.http.close()

    async def _answer(self, r: aiohttp.ClientResponse) -> Any:
        text = await r.text()
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = text
        if not 200 <= r.status < 300:
            raise ApiError(r.status, body)
        return body

    async def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        assert self.http is not None
        self.calls.append(("GET", path))
        async with self.http.get(self.server_url + path, params=dict(params or {})) as r:
            return await self._answer(r)

    async def post_json(self, path: str, body: Any) -> Any:
        assert self.http is not None
        self.calls.append(("POST", path))
        async with self.http.post(self.server_url + path, json=body) as r:
            return await self._answer(r)
