"""Gateway login, validate, check-access, the session cache and degraded mode (gateway.md §4, §7)."""

from __future__ import annotations

import time

import pytest

from app.devstack.ports import free_port
from tests.support.auth0 import AUDIENCE, DOMAIN, new_key, unsigned_token
from tests.support.gateway import gateway_stack

pytestmark = pytest.mark.integration


async def test_valid_login_returns_session_and_validates(db_dsn: str, nats_url: str) -> None:
    async with gateway_stack(db_dsn, nats_url) as st:
        status, out = await st.post(
            "/api/auth/login", json={"auth0_token": st.auth0.token(), "session_duration_hours": 2}
        )
        assert status == 200, out
        assert out["status"] == "authenticated" and out["message"] == "Authentication successful"
        assert out["user"]["email"] == "alice@example.com" and isinstance(out["user"]["user_id"], int)
        assert out["expires_at"].endswith("Z")
        status, v = await st.post("/api/auth/validate", json={"session_token": out["session_token"]})
        assert status == 200 and v["valid"] is True and v["message"] == "Session is valid"
        status, v = await st.post("/api/auth/validate", json={"session_token": "not-a-session"})
        assert v == {
            "valid": False,
            "user": None,
            "expires_at": None,
            "message": "Session is invalid or expired",
        }


@pytest.mark.parametrize(
    "case",
    ["unsigned", "forged", "expired", "wrong_audience", "wrong_issuer", "hs256", "no_kid", "garbage"],
)
async def test_bad_tokens_are_401(db_dsn: str, nats_url: str, case: str) -> None:
    async with gateway_stack(db_dsn, nats_url) as st:
        now = int(time.time())
        token = {
            "unsigned": lambda: unsigned_token(),
            "forged": lambda: st.auth0.token(key=new_key()),
            "expired": lambda: st.auth0.token(exp=now - 3600, iat=now - 7200),
            "wrong_audience": lambda: st.auth0.token(aud="someone-else"),
            "wrong_issuer": lambda: st.auth0.token(iss="https://evil.example/"),
            "hs256": lambda: __import__("jwt").encode(
                {
                    "iss": f"https://{DOMAIN}/",
                    "aud": AUDIENCE,
                    "sub": "x",
                    "email": "x@e.com",
                    "exp": now + 60,
                },
                "k" * 32,
                algorithm="HS256",
                headers={"kid": st.auth0.kid},
            ),
            "no_kid": lambda: __import__("jwt").encode(
                {"iss": f"https://{DOMAIN}/", "aud": AUDIENCE, "sub": "x", "exp": now + 60},
                st.auth0.key,
                algorithm="RS256",
            ),
            "garbage": lambda: "not.a.jwt",
        }[case]()
        status, out = await st.post("/api/auth/login", json={"auth0_token": token})
        assert status == 401, out
        assert out["error"].startswith("Invalid Auth0 token")
        assert await st.api.deps.pool.fetchval("SELECT count(*) FROM auth.sessions") == 0


async def test_login_body_errors_and_foreign_domain(db_dsn: str, nats_url: str) -> None:
    async with gateway_stack(db_dsn, nats_url) as st:
        status, _ = await st.post("/api/auth/login", data=b"{}", headers={"Content-Type": "text/plain"})
        assert status == 415
        status, _ = await st.post(
            "/api/auth/login", data=b"{nope", headers={"Content-Type": "application/json"}
        )
        assert status == 400
        status, _ = await st.post("/api/auth/login", json={"auth0_domain": DOMAIN})
        assert status == 422
        status, _ = await st.post(
            "/api/auth/login", json={"auth0_token": st.auth0.token(), "session_duration_hours": 0}
        )
        assert status == 422
        status, out = await st.post(
            "/api/auth/login", json={"auth0_token": st.auth0.token(), "auth0_domain": "evil.auth0.com"}
        )
        assert status == 401 and out["error"] == "auth0_domain not allowed"


async def test_login_is_rate_limited(db_dsn: str, nats_url: str) -> None:
    async with gateway_stack(db_dsn, nats_url, GATEWAY_LOGIN_RATE_LIMIT_PER_MINUTE="3") as st:
        statuses = [(await st.post("/api/auth/login", json={"auth0_token": "x.y.z"}))[0] for _ in range(5)]
        assert statuses[:3] == [401, 401, 401] and statuses[3:] == [429, 429]


async def test_check_access_through_gateway(db_dsn: str, nats_url: str) -> None:
    async with gateway_stack(db_dsn, nats_url) as st:
        token = await st.login(role="analyst")
        body = {"session_token": token, "playbook_path": "data/load", "permission_type": "execute"}
        status, out = await st.post("/api/auth/check-access", json=body)
        assert status == 200 and out["allowed"] is True and out["user"]["roles"] == ["analyst"]
        assert out["playbook_path"] == "data/load" and out["permission_type"] == "execute"
        status, out = await st.post("/api/auth/check-access", json={**body, "playbook_path": "system/x"})
        assert out["allowed"] is False and out["message"] == "Access denied"


async def test_session_cache_hit_does_not_call_server(db_dsn: str, nats_url: str) -> None:
    async with gateway_stack(db_dsn, nats_url) as st:
        token = await st.login()
        before = st.gw.server.calls
        for _ in range(5):
            status, v = await st.post("/api/auth/validate", json={"session_token": token})
            assert status == 200 and v["valid"] is True
        assert st.gw.server.calls == before  # every check answered from NATS K/V
        # Evict the cache entry: the next check must reach the server, then re-cache.
        from app.gateway.sessions import token_hash

        await st.gw.nats.delete("sessions", token_hash(token))
        await st.post("/api/auth/validate", json={"session_token": token})
        assert st.gw.server.calls == before + 1
        await st.post("/api/auth/validate", json={"session_token": token})
        assert st.gw.server.calls == before + 1
        # A revoked session keeps working only from cache; once evicted the server's answer wins.
        await st.api.deps.pool.execute("UPDATE auth.sessions SET is_active = false")
        await st.gw.nats.delete("sessions", token_hash(token))
        _, v = await st.post("/api/auth/validate", json={"session_token": token})
        assert v["valid"] is False


async def test_nats_down_still_authenticates_through_server(db_dsn: str, nats_url: str) -> None:
    dead = f"nats://127.0.0.1:{free_port()}"
    async with gateway_stack(db_dsn, nats_url, gateway_nats_url=dead) as st:
        assert not st.gw.nats.ready
        token = await st.login()
        before = st.gw.server.calls
        status, v = await st.post("/api/auth/validate", json={"session_token": token})
        assert status == 200 and v["valid"] is True
        assert st.gw.server.calls == before + 1  # no cache: the server answered
        status, out = await st.post(
            "/graphql", json={"query": "{ health version }"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert status == 200 and out["data"]["health"] == "ok"


async def test_protected_routes_need_a_session(db_dsn: str, nats_url: str) -> None:
    async with gateway_stack(db_dsn, nats_url) as st:
        status, text = await st.post("/graphql", json={"query": "{ health }"})
        assert status == 401 and text == "Missing authentication token"
        status, text = await st.post(
            "/graphql", json={"query": "{ health }"}, headers={"Authorization": "Bearer nope"}
        )
        assert status == 401 and text == "Invalid or expired session"
        token = await st.login()
        # Basic auth falls through to X-Session-Token; the cookie is the last source.
        for headers in (
            {"Authorization": "Basic abc", "X-Session-Token": token},
            {"Cookie": f"other=1; session_token={token}"},
        ):
            status, out = await st.post("/graphql", json={"query": "{ health }"}, headers=headers)
            assert status == 200 and out["data"]["health"] == "ok", headers
        status, text = await st.get("/health")
        assert status == 200 and text == "ok"
        status, text = await st.get("/metrics")
        assert 'noetl_gateway_login_total{outcome="succeeded"} 1.0' in text


async def test_proxy_refuses_internal_and_enforces_permissions(db_dsn: str, nats_url: str) -> None:
    async with gateway_stack(db_dsn, nats_url) as st:
        viewer = await st.login(role="viewer")
        admin = await st.login(sub="auth0|root", email="root@example.com", role="admin")
        for path in ("/noetl/internal/outbox/stats", "/noetl/internal", "/noetl/%69nternal/x"):
            async with st.http.get(st.url + path, headers={"Authorization": f"Bearer {admin}"}) as r:
                assert r.status in (400, 403), path
        for path in ("/noetl/catalog/../internal/x", "/noetl/catalog/%2e%2e/internal", "/noetl/a%2Fb"):
            async with st.http.get(st.url + path, headers={"Authorization": f"Bearer {admin}"}) as r:
                assert r.status in (400, 403, 404), path
        async with st.http.get(st.url + "/noetl/health", headers={"Authorization": f"Bearer {admin}"}) as r:
            assert r.status == 200
        async with st.http.get(st.url + "/noetl/health", headers={"Authorization": f"Bearer {viewer}"}) as r:
            assert r.status == 403 and (await r.json())["error"].startswith("Access denied")
        async with st.http.post(
            st.url + "/noetl/execute", json={"path": "api/x"}, headers={"Authorization": f"Bearer {viewer}"}
        ) as r:
            assert r.status == 403 and (await r.json())["error"] == "Access denied: execute on api/x"
        async with st.http.get(st.url + "/noetl/health") as r:
            assert r.status == 401


async def test_cors(db_dsn: str, nats_url: str) -> None:
    async with gateway_stack(db_dsn, nats_url) as st:
        async with st.http.options(
            st.url + "/noetl/anything", headers={"Origin": "http://localhost:3000"}
        ) as r:
            assert r.status == 200
            assert r.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
            assert r.headers["Access-Control-Allow-Credentials"] == "true"
            assert "x-session-token" in r.headers["Access-Control-Allow-Headers"]
        async with st.http.get(st.url + "/health", headers={"Origin": "http://evil.example"}) as r:
            assert "Access-Control-Allow-Origin" not in r.headers and r.headers["Vary"].startswith("origin")
