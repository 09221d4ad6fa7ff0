"""Session resolution (gateway.md §4.6, §7.1): hashed K/V cache, negative cache, then the server."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.errors import ExternalServiceError
from app.gateway.backend import ServerClient, Upstream
from app.gateway.kv import GatewayNats, KvError

log = logging.getLogger(__name__)

BYPASS_USER = {"user_id": 0, "email": "dev@localhost", "display_name": "Dev User", "roles": ["admin"]}


def token_hash(token: str) -> str:
    """Lowercase hex SHA-256: the only form a session token takes in K/V."""
    return hashlib.sha256(token.encode()).hexdigest()


def extract_token(headers: Any) -> str | None:
    """Authorization 'Bearer ', then X-Session-Token, then the first Cookie's session_token (§4.5)."""
    auth = headers.get("Authorization")
    if auth is not None and auth.startswith("Bearer "):
        return str(auth)[len("Bearer ") :]
    if "X-Session-Token" in headers:
        return str(headers.get("X-Session-Token", ""))
    cookie = headers.get("Cookie")
    if cookie is not None:
        for pair in cookie.split(";"):
            name, sep, value = pair.strip().partition("=")
            if sep and name == "session_token":
                return str(value)
    return None


def parse_roles(value: Any) -> list[str]:
    """Roles from a JSON array, a JSON-encoded array, a Postgres literal or a bare string (§4.2)."""
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except ValueError:
                return []
            return [str(v) for v in parsed] if isinstance(parsed, list) else []
        if text.startswith("{") and text.endswith("}"):
            return [p.strip().strip('"') for p in text[1:-1].split(",") if p.strip()]
        return [text] if text else []
    return []


def parse_user(user: Any) -> dict[str, Any]:
    """The user shape of responses; user_id may arrive as a numeric string."""
    u = user if isinstance(user, dict) else {}
    try:
        uid = int(u.get("user_id") or 0)
    except (TypeError, ValueError):
        uid = 0
    email = str(u.get("email") or "unknown")
    return {
        "user_id": uid,
        "email": email,
        "display_name": str(u.get("display_name") or email),
        "roles": parse_roles(u.get("roles")),
    }


def _future(ts: Any) -> bool:
    try:
        return datetime.fromisoformat(str(ts).replace("Z", "+00:00")) > datetime.now(UTC)
    except ValueError:
        return False


@dataclass
class Session:
    """A resolved session."""

    token_hash: str
    user: dict[str, Any]
    expires_at: str | None
    from_cache: bool = False


@dataclass
class SessionResolver:
    """Cache first, then the server; the cache is never authoritative."""

    server: ServerClient
    nats: GatewayNats
    negative_ttl: float
    metrics: Any = None
    _negative: dict[str, float] = field(default_factory=dict)

    async def cache_put(self, token: str, user: dict[str, Any], expires_at: str, stage: str) -> None:
        """Write the cache entry; failures are counted, never fatal."""
        value = json.dumps({**user, "expires_at": expires_at, "is_active": True}).encode()
        try:
            await self.nats.put("sessions", token_hash(token), value)
        except KvError as exc:
            log.warning("session cache put failed", extra={"error": str(exc)})
            if self.metrics is not None:
                self.metrics.session_cache_failed.labels(stage=stage).inc()

    async def resolve(self, token: str) -> Session | None:
        """The session, None when invalid; ExternalServiceError when the server cannot decide."""
        h = token_hash(token)
        try:
            raw = await self.nats.get("sessions", h)
        except KvError:
            raw = None
        if raw is not None:
            try:
                entry = json.loads(raw)
            except ValueError:
                entry = {}
            if entry.get("is_active") is True and _future(entry.get("expires_at")):
                return Session(h, parse_user(entry), str(entry["expires_at"]), from_cache=True)
        now = time.monotonic()
        seen = self._negative.get(h)
        if seen is not None and now - seen < self.negative_ttl:
            return None
        try:
            reply = await self.server.validate(token)
        except Upstream as exc:
            raise ExternalServiceError(f"Session validation failed: upstream HTTP {exc.status}") from None
        if not isinstance(reply, dict) or reply.get("status") != "ok":
            raise ExternalServiceError("Session validation failed: upstream HTTP 200")
        if reply.get("valid") is not True:
            self._remember_invalid(h, now)
            try:
                await self.nats.delete("sessions", h)
            except KvError:
                pass
            return None
        if not isinstance(reply.get("user"), dict):
            raise ExternalServiceError("Session validation failed: no user returned")
        user = parse_user(reply["user"])
        expires = str(reply.get("expires_at") or "")
        await self.cache_put(token, user, expires, "after_api_validate")
        return Session(h, user, expires)

    def _remember_invalid(self, h: str, now: float) -> None:
        if len(self._negative) > 10000:  # bounded: drop the oldest half
            for key in sorted(self._negative, key=self._negative.__getitem__)[:5000]:
                self._negative.pop(key, None)
        self._negative[h] = now
