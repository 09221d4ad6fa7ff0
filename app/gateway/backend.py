"""HTTP calls from the gateway to the control-plane server (never Postgres)."""

from __future__ import annotations

from typing import Any

import aiohttp

from app.config.gateway import GatewaySettings
from app.errors import ExternalServiceError


class Upstream(Exception):
    """A non-2xx reply from the server: status and the server's error message (never the raw body)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} - {message}")
        self.status = status
        self.message = message


def _message(body: Any) -> str:
    if isinstance(body, dict):
        for key in ("error", "detail", "message"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value[:500]
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return str(value["message"])[:500]
    return "upstream error"


class ServerClient:
    """JSON calls to NOETL_BASE_URL; auth routes carry the internal token."""

    def __init__(self, settings: GatewaySettings, http: aiohttp.ClientSession) -> None:
        self.s = settings
        self.http = http
        self.base = settings.noetl_base_url.rstrip("/")
        self.calls = 0  # tests and benches prove cache hits by counting

    def _headers(self, internal: bool) -> dict[str, str]:
        token = self.s.internal_api_token.strip()
        return {"Authorization": f"Bearer {token}"} if internal and token else {}

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        internal: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """The parsed JSON reply; Upstream on non-2xx; ExternalServiceError when unreachable."""
        self.calls += 1
        t = aiohttp.ClientTimeout(total=timeout or self.s.noetl_timeout_secs)
        try:
            async with self.http.request(
                method, self.base + path, json=body, headers=self._headers(internal), timeout=t
            ) as r:
                try:
                    data = await r.json(content_type=None)
                except ValueError:
                    data = None
                if r.status >= 300:
                    raise Upstream(r.status, _message(data))
                return data
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ExternalServiceError(f"server unreachable: {type(exc).__name__}") from None

    async def login(self, body: dict[str, Any]) -> Any:
        """POST /api/auth/login."""
        return await self.call("POST", "/api/auth/login", body, internal=True)

    async def validate(self, token: str) -> Any:
        """POST /api/auth/session/validate."""
        return await self.call("POST", "/api/auth/session/validate", {"session_token": token}, internal=True)

    async def check_access(self, token: str, path: str, action: str) -> Any:
        """POST /api/auth/check-playbook-access."""
        body = {"session_token": token, "playbook_path": path, "action": action, "credential": "pg_auth"}
        return await self.call("POST", "/api/auth/check-playbook-access", body, internal=True)
