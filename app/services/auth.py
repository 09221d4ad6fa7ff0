"""Server-side auth (gateway.md §6): login, session validation and playbook access over the auth schema."""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict

from app.db.types import Executor
from app.gateway.auth0 import Auth0Verifier

ACTIONS = {"execute": "execute", "view": "view", "edit": "edit", "modify": "edit", "delete": "delete"}


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    auth0_token: str
    auth0_domain: str | None = None
    client_ip: str | None = None
    session_duration_hours: int | None = None
    user_agent: str | None = None
    credential: str | None = None


class ValidateIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    session_token: str
    credential: str | None = None


class AccessIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    session_token: str
    playbook_path: str
    action: str
    credential: str | None = None


def rfc3339(ts: datetime) -> str:
    """UTC RFC 3339 with a Z suffix, seconds precision."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ip(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def _token_ok(token: str) -> bool:
    return 0 < len(token) <= 255


async def _audit(
    conn: Executor,
    event: str,
    status: str,
    *,
    user_id: int | None = None,
    resource: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO auth.audit_log (user_id, event_type, status, resource, ip, user_agent)"
        " VALUES ($1, $2, $3, $4, $5::inet, $6)",
        user_id,
        event,
        status,
        resource,
        ip,
        user_agent,
    )


async def login(pool: asyncpg.Pool, verifier: Auth0Verifier, body: LoginIn, max_hours: int) -> dict[str, Any]:
    """Verify the Auth0 token, upsert the user, mint a session; the §6.1 envelope."""
    ip = _ip(body.client_ip)
    try:
        domain = verifier.resolve_domain(body.auth0_domain)
        ident = await verifier.verify(body.auth0_token, domain)
    except Exception as exc:
        await _audit(pool, "login", "failed", ip=ip, user_agent=body.user_agent)
        message = getattr(exc, "message", "Invalid Auth0 token")
        return {"status": "error", "data": {"message": "Authentication failed", "error": message}}
    hours = max(1, min(body.session_duration_hours or 8, max_hours))
    token = secrets.token_hex(32)
    now = datetime.now(UTC)
    expires = now + timedelta(hours=hours)
    async with pool.acquire() as conn, conn.transaction():
        user = await conn.fetchrow(
            "INSERT INTO auth.users (auth0_id, email, display_name, last_login_at) VALUES ($1, $2, $3, now())"
            " ON CONFLICT (auth0_id) DO UPDATE SET email = EXCLUDED.email,"
            " display_name = EXCLUDED.display_name, last_login_at = now()"
            " RETURNING user_id, email, display_name",
            ident.sub,
            ident.email,
            ident.name,
        )
        assert user is not None
        uid = int(user["user_id"])
        if ident.email_verified:
            # Roles follow a verified email across Auth0 identities (e.g. a new social login).
            await conn.execute(
                "INSERT INTO auth.user_roles (user_id, role_id, expires_at)"
                " SELECT $1, ur.role_id, ur.expires_at FROM auth.user_roles ur JOIN auth.users u"
                " ON u.user_id = ur.user_id WHERE lower(u.email) = lower($2) AND u.user_id <> $1"
                " AND (ur.expires_at IS NULL OR ur.expires_at > now()) ON CONFLICT DO NOTHING",
                uid,
                ident.email,
            )
        await conn.execute(
            "INSERT INTO auth.sessions (user_id, session_token, auth0_token, created_at, expires_at,"
            " ip_address, user_agent) VALUES ($1, $2, $3, $4, $5, $6::inet, $7)",
            uid,
            token,
            hashlib.sha256(body.auth0_token.encode()).hexdigest(),
            now,
            expires,
            ip,
            body.user_agent,
        )
        roles = await _roles(conn, uid)
        await _audit(conn, "login", "ok", user_id=uid, ip=ip, user_agent=body.user_agent)
    return {
        "status": "success",
        "data": {
            "status": "authenticated",
            "session_token": token,
            "user": {
                "user_id": uid,
                "email": user["email"],
                "display_name": user["display_name"] or user["email"],
                "roles": roles,
            },
            "expires_at": rfc3339(expires),
        },
    }


async def _roles(conn: Executor, uid: int) -> list[str]:
    rows = await conn.fetch(
        "SELECT r.role_name FROM auth.user_roles ur JOIN auth.roles r ON r.role_id = ur.role_id"
        " WHERE ur.user_id = $1 AND (ur.expires_at IS NULL OR ur.expires_at > now()) ORDER BY r.role_name",
        uid,
    )
    return [str(r["role_name"]) for r in rows]


async def _session_user(pool: asyncpg.Pool, token: str) -> dict[str, Any] | None:
    if not _token_ok(token):
        return None
    row = await pool.fetchrow(
        "SELECT s.session_id, s.expires_at, s.last_activity_at, u.user_id, u.email, u.display_name"
        " FROM auth.sessions s JOIN auth.users u ON u.user_id = s.user_id"
        " WHERE s.session_token = $1 AND s.is_active AND s.expires_at > now() AND u.is_active",
        token,
    )
    if row is None:
        return None
    uid = int(row["user_id"])
    return {
        "session_id": row["session_id"],
        "last_activity_at": row["last_activity_at"],
        "expires_at": rfc3339(row["expires_at"]),
        "user": {
            "user_id": uid,
            "email": row["email"],
            "display_name": row["display_name"] or row["email"],
            "roles": await _roles(pool, uid),
        },
    }


async def validate(pool: asyncpg.Pool, token: str) -> dict[str, Any]:
    """Session validity and its user (§6.1); touches last_activity_at at most once a minute."""
    found = await _session_user(pool, token)
    if found is None:
        return {"status": "ok", "valid": False}
    await pool.execute(
        "UPDATE auth.sessions SET last_activity_at = now()"
        " WHERE session_id = $1 AND last_activity_at < now() - interval '1 minute'",
        found["session_id"],
    )
    return {"status": "ok", "valid": True, "user": found["user"], "expires_at": found["expires_at"]}


async def check_access(pool: asyncpg.Pool, body: AccessIn) -> dict[str, Any]:
    """The §5.2 decision for (session, playbook path, action); denials are audited."""
    found = await _session_user(pool, body.session_token)
    if found is None:
        return {"status": "success", "data": {"allowed": False, "message": "Access denied"}}
    action = body.action.strip().lower()
    user = found["user"]
    allowed = False
    if action in ACTIONS:
        allowed = bool(
            await pool.fetchval(
                "SELECT auth.check_playbook_permission($1, $2, $3)",
                user["user_id"],
                body.playbook_path,
                action,
            )
        )
    if not allowed:
        await _audit(
            pool, "access", "denied", user_id=user["user_id"], resource=f"{action}:{body.playbook_path}"
        )
    message = f"Access granted to {action} playbook" if allowed else "Access denied"
    return {"status": "success", "data": {"allowed": allowed, "user": user, "message": message}}
