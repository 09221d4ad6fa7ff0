"""Server auth routes (gateway.md §6): internal gate, login, validate, the permission matrix."""

from __future__ import annotations

import pytest

from tests.support.auth0 import auth_env, fake_auth0, settings_with
from tests.support.server import running_api

pytestmark = pytest.mark.integration

TOKEN = "internal-test-token"
H = {"Authorization": f"Bearer {TOKEN}"}


async def _grant(api, user_id: int, role: str) -> None:  # type: ignore[no-untyped-def]
    await api.deps.pool.execute(
        "INSERT INTO auth.user_roles (user_id, role_id) SELECT $1, role_id FROM auth.roles WHERE role_name = $2",
        user_id,
        role,
    )


async def test_routes_require_internal_token(db_dsn: str) -> None:
    async with fake_auth0() as fake, running_api(settings_with(db_dsn, **auth_env(fake))) as api:
        status, _ = await api.post("/api/auth/session/validate", json={"session_token": "x"})
        assert status == 403
        status, _ = await api.post(
            "/api/auth/session/validate",
            json={"session_token": "x"},
            headers={"Authorization": "Bearer nope"},
        )
        assert status == 403


async def test_login_validate_and_expiry_clamp(db_dsn: str) -> None:
    async with fake_auth0() as fake, running_api(settings_with(db_dsn, **auth_env(fake))) as api:
        body = {"auth0_token": fake.token(), "session_duration_hours": 500, "client_ip": "10.1.2.3"}
        status, out = await api.post("/api/auth/login", json=body, headers=H)
        assert status == 200 and out["status"] == "success", out
        data = out["data"]
        assert data["status"] == "authenticated" and len(data["session_token"]) == 64
        assert data["user"]["email"] == "alice@example.com" and data["user"]["roles"] == []
        row = await api.deps.pool.fetchrow(
            "SELECT expires_at - created_at AS d, auth0_token, host(ip_address) AS ip FROM auth.sessions"
        )
        assert row["d"].total_seconds() == 24 * 3600  # capped by NOETL_AUTH_SESSION_MAX_HOURS
        assert row["auth0_token"] != body["auth0_token"] and row["ip"] == "10.1.2.3"
        status, v = await api.post(
            "/api/auth/session/validate", json={"session_token": data["session_token"]}, headers=H
        )
        assert status == 200 and v["valid"] is True and v["user"]["user_id"] == data["user"]["user_id"]
        status, v = await api.post("/api/auth/session/validate", json={"session_token": "bogus"}, headers=H)
        assert v == {"status": "ok", "valid": False}
        await api.deps.pool.execute(
            "UPDATE auth.sessions SET created_at = now() - interval '2 hours', expires_at = now() - interval '1 hour'"
        )
        status, v = await api.post(
            "/api/auth/session/validate", json={"session_token": data["session_token"]}, headers=H
        )
        assert v["valid"] is False


async def test_login_rejects_forged_token(db_dsn: str) -> None:
    from tests.support.auth0 import new_key

    async with fake_auth0() as fake, running_api(settings_with(db_dsn, **auth_env(fake))) as api:
        status, out = await api.post(
            "/api/auth/login", json={"auth0_token": fake.token(key=new_key())}, headers=H
        )
        assert status == 200 and out["status"] == "error"
        assert await api.deps.pool.fetchval("SELECT count(*) FROM auth.sessions") == 0


MATRIX = [
    # role, path, action, allowed
    ("admin", "system/reset", "delete", True),
    ("admin", "anything/at_all", "execute", True),
    ("developer", "api_integration/amadeus_ai_api", "execute", True),
    ("developer", "api_integration/x", "edit", True),
    ("developer", "api_integration/x", "modify", True),
    ("developer", "api_integration/x", "delete", False),
    ("developer", "system/reset", "execute", False),
    ("developer", "system/reset", "view", False),
    ("analyst", "data/daily_load", "execute", True),
    ("analyst", "data/daily_load", "view", True),
    ("analyst", "data/daily_load", "edit", False),
    ("analyst", "reports/x", "view", False),
    ("analyst", "data", "view", False),
    ("viewer", "api_integration/x", "view", True),
    ("viewer", "api_integration/x", "execute", False),
    ("viewer", "api_integration/x", "edit", False),
    ("viewer", "api_integration/x", "delete", False),
    ("viewer", "api_integration/x", "launch", False),
    (None, "api_integration/x", "view", False),
]


async def test_permission_matrix(db_dsn: str) -> None:
    async with fake_auth0() as fake, running_api(settings_with(db_dsn, **auth_env(fake))) as api:
        sessions: dict[str | None, str] = {}
        for role in ["admin", "developer", "analyst", "viewer", None]:
            name = role or "nobody"
            tok = fake.token(sub=f"auth0|{name}", email=f"{name}@example.com", email_verified=False)
            _, out = await api.post("/api/auth/login", json={"auth0_token": tok}, headers=H)
            if role:
                await _grant(api, out["data"]["user"]["user_id"], role)
            sessions[role] = out["data"]["session_token"]
        got = []
        for role, path, action, _ in MATRIX:
            body = {"session_token": sessions[role], "playbook_path": path, "action": action}
            status, out = await api.post("/api/auth/check-playbook-access", json=body, headers=H)
            assert status == 200 and out["status"] == "success"
            got.append((role, path, action, out["data"]["allowed"]))
        assert got == MATRIX
        # A row's deny pattern limits only that row: developer+analyst still may not touch system/* ...
        # ... but an extra admin grant allows it.
        dev_uid = await api.deps.pool.fetchval(
            "SELECT user_id FROM auth.users WHERE email = 'developer@example.com'"
        )
        await _grant(api, dev_uid, "admin")
        body = {"session_token": sessions["developer"], "playbook_path": "system/reset", "action": "execute"}
        _, out = await api.post("/api/auth/check-playbook-access", json=body, headers=H)
        assert out["data"]["allowed"] is True
        _, out = await api.post(
            "/api/auth/check-playbook-access", json={**body, "session_token": "nope"}, headers=H
        )
        assert out["data"]["allowed"] is False and "user" not in out["data"]
