"""CredentialResolver against the real server: env allowlist, plaintext fetch, sealed fetch, errors."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from app.worker.credentials import CredentialResolver
from app.worker.tools import http, postgres
from app.worker.tools.base import ToolError
from tests.integration.worker.conftest import register_worker_key, store_credential
from tests.support.server import Api
from tests.support.simple_api import SimpleApi
from tests.support.tool_context import make_ctx

pytestmark = pytest.mark.integration

SECRET = "pw-Sup3r-s3cret"


def resolver(api: SimpleApi, **kw: Any) -> CredentialResolver:
    args: dict[str, Any] = {
        "execution_id": 12345,
        "worker_id": "wk-1",
        "env_allowlist": [],
        "private_key": None,
        "sealed": False,
    }
    args.update(kw)
    return CredentialResolver(api, **args)


async def test_plaintext_fetch(keyed_api: Api, server_api: SimpleApi) -> None:
    data = {"db_host": "h", "db_port": 5432, "db_user": "u", "db_password": SECRET, "db_name": "d"}
    await store_credential(keyed_api, "pg_local", "postgres", data)
    cred = await resolver(server_api).resolve("pg_local")
    assert cred["type"] == "postgres" and cred["data"] == data
    assert server_api.calls == [("GET", "/api/credentials/pg_local")]


async def test_env_allowlist_comes_first(
    keyed_api: Api, server_api: SimpleApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOETL_TOOL_TEST_TOKEN", "env-token-value")
    monkeypatch.setenv("NOT_LISTED_TOKEN", "must-not-leak")
    res = resolver(server_api, env_allowlist=["NOETL_TOOL_TEST_TOKEN"])
    cred = await res.resolve("NOETL_TOOL_TEST_TOKEN")
    assert cred["type"] == "env" and cred["data"]["value"] == "env-token-value"
    assert server_api.calls == []
    # An env var that is set but not allowlisted is never read: the alias goes to the server (404).
    with pytest.raises(ToolError) as err:
        await res.resolve("NOT_LISTED_TOKEN")
    assert err.value.code == "credential_not_found" and "must-not-leak" not in err.value.message


async def test_unknown_alias_is_a_readable_error(server_api: SimpleApi) -> None:
    with pytest.raises(ToolError) as err:
        await resolver(server_api).resolve("no_such_alias")
    assert err.value.code == "credential_not_found"
    assert err.value.message == "credential 'no_such_alias' not found"


async def test_alias_is_percent_encoded(keyed_api: Api, server_api: SimpleApi) -> None:
    await store_credential(keyed_api, "team a/key", "api_key", {"api_key": SECRET})
    cred = await resolver(server_api).resolve("team a/key")
    assert cred["data"] == {"api_key": SECRET}


async def test_sealed_fetch_with_registered_key(keyed_api: Api, server_api: SimpleApi) -> None:
    await store_credential(keyed_api, "api_tok", "bearer", {"token": SECRET})
    sk = await register_worker_key(keyed_api, "wk-sealed")
    res = resolver(server_api, worker_id="wk-sealed", private_key=sk, sealed=True)
    cred = await res.resolve("api_tok")
    assert cred == {"type": "bearer", "name": "api_tok", "data": {"token": SECRET}}
    assert server_api.calls == [("GET", "/api/credentials/api_tok/sealed")]
    # Nothing is cached: a second resolve asks again.
    await res.resolve("api_tok")
    assert len(server_api.calls) == 2


async def test_sealed_without_key_falls_back_to_plaintext(keyed_api: Api, server_api: SimpleApi) -> None:
    await store_credential(keyed_api, "api_tok", "bearer", {"token": SECRET})
    cred = await resolver(server_api, sealed=True, private_key=None).resolve("api_tok")
    assert cred["data"] == {"token": SECRET} and server_api.calls == [("GET", "/api/credentials/api_tok")]


async def test_sealed_to_another_key_fails_terminally(keyed_api: Api, server_api: SimpleApi) -> None:
    await store_credential(keyed_api, "api_tok", "bearer", {"token": SECRET})
    await register_worker_key(keyed_api, "wk-other")
    res = resolver(server_api, worker_id="wk-other", private_key=X25519PrivateKey.generate(), sealed=True)
    with pytest.raises(ToolError) as err:
        await res.resolve("api_tok")
    assert err.value.code == "sealed_open" and "AEAD" in err.value.message and SECRET not in err.value.message


async def test_sealed_unregistered_worker(keyed_api: Api, server_api: SimpleApi) -> None:
    await store_credential(keyed_api, "api_tok", "bearer", {"token": SECRET})
    res = resolver(server_api, worker_id="wk-never", private_key=X25519PrivateKey.generate(), sealed=True)
    with pytest.raises(ToolError) as err:
        await res.resolve("api_tok")
    assert err.value.code == "credential_error" and "400" in err.value.message


async def test_sealed_unknown_alias(keyed_api: Api, server_api: SimpleApi) -> None:
    sk = await register_worker_key(keyed_api, "wk-s2")
    res = resolver(server_api, worker_id="wk-s2", private_key=sk, sealed=True)
    with pytest.raises(ToolError) as err:
        await res.resolve("ghost")
    assert err.value.code == "credential_not_found"


async def test_postgres_tool_with_a_server_credential(
    keyed_api: Api, server_api: SimpleApi, db_dsn: str
) -> None:
    u = urlsplit(db_dsn)
    data = {
        "db_host": u.hostname,
        "db_port": u.port,
        "db_user": u.username,
        "db_password": u.password or "",
        "db_name": u.path.lstrip("/"),
    }
    await store_credential(keyed_api, "pg_test", "postgres", data)
    sk = await register_worker_key(keyed_api, "wk-pg")
    ctx = make_ctx(credentials=resolver(server_api, worker_id="wk-pg", private_key=sk, sealed=True))
    result = await postgres.run({"auth": "pg_test", "command": "SELECT 7 AS v"}, ctx)
    assert result["rows"] == [{"v": 7}]


async def test_http_bearer_from_server_credential(
    keyed_api: Api, server_api: SimpleApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stored bearer credential and an allowlisted env var both become the Authorization header.
    from aiohttp import web

    seen: list[str] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        await store_credential(keyed_api, "svc_token", "bearer", {"token": SECRET})
        monkeypatch.setenv("NOETL_TOOL_INTERNAL", "internal-token")
        creds = resolver(server_api, env_allowlist=["NOETL_TOOL_INTERNAL"])
        ctx = make_ctx(credentials=creds)
        await http.run({"url": f"http://127.0.0.1:{port}/", "auth": "svc_token"}, ctx)
        await http.run(
            {
                "url": f"http://127.0.0.1:{port}/",
                "auth": {"type": "bearer", "credential": "NOETL_TOOL_INTERNAL"},
            },
            ctx,
        )
        assert seen == [f"Bearer {SECRET}", "Bearer internal-token"]
    finally:
        await runner.cleanup()
