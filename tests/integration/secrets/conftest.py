"""Fixtures for the wallet's route-level tests: a keyed server, a fake Vault, worker keys, keychain playbooks."""

from __future__ import annotations

import json
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from app.secrets.encoding import b64encode
from app.secrets.sealed import open_sealed, public_key_bytes
from tests.support.playbooks import register
from tests.support.server import Api, make_settings, running_api

KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # bytes 0x00..0x1f (secrets.md §10)
TOKEN = "test-internal-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def settings(db_dsn: str, **env: str) -> Any:
    base = {"NOETL_ENCRYPTION_KEY": KEY, "NOETL_INTERNAL_API_TOKEN": TOKEN}
    base.update(env)
    return make_settings(db_dsn, **base)


@pytest.fixture
async def api(db_dsn: str) -> AsyncIterator[Api]:
    async with running_api(settings(db_dsn)) as a:
        yield a


def sample(api: Api, name: str, **labels: str) -> float:
    v = api.deps.metrics.registry.get_sample_value(name, labels)
    return 0.0 if v is None else v


# ------------------------------------------------------------------ fake Vault (KV v2) with a hit counter


@dataclass
class FakeVault:
    url: str = ""
    values: dict[str, str] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)


@pytest.fixture
async def vault(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeVault]:
    """A Vault KV v2 stand-in on 127.0.0.1; VAULT_ADDR/VAULT_TOKEN point the provider at it."""
    fake = FakeVault()

    async def handler(request: web.Request) -> web.Response:
        mount, path = request.match_info["mount"], request.match_info["path"]
        path = path if mount == "secret" else f"{mount}/{path}"  # the reference as the playbook wrote it
        fake.hits.append(path)
        if request.headers.get("X-Vault-Token") != "vault-test-token":
            return web.json_response({"errors": ["permission denied"]}, status=403)
        if path not in fake.values:
            return web.json_response({"errors": []}, status=404)
        return web.json_response({"data": {"data": {"value": fake.values[path]}, "metadata": {"version": 3}}})

    app = web.Application()
    app.router.add_get("/v1/{mount}/data/{path:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("VAULT_ADDR", fake.url)
    monkeypatch.setenv("VAULT_TOKEN", "vault-test-token")
    yield fake
    await runner.cleanup()


# ------------------------------------------------------------------ workers


@dataclass
class Worker:
    worker_id: str
    sk: X25519PrivateKey

    @property
    def public_b64(self) -> str:
        return b64encode(public_key_bytes(self.sk))

    def open(self, envelope: Any) -> bytes:
        return open_sealed(self.sk, envelope if isinstance(envelope, str | bytes) else json.dumps(envelope))


async def register_worker(api: Api, worker_id: str, public_key: str | None = None) -> Worker:
    sk = X25519PrivateKey.generate()
    w = Worker(worker_id, sk)
    runtime: dict[str, Any] = {"kind": "python"}
    runtime["worker_public_key"] = w.public_b64 if public_key is None else public_key
    status, body = await api.post(
        "/api/worker/pool/register",
        json={"name": worker_id, "component_type": "worker_pool", "runtime": runtime, "status": "ready"},
    )
    assert status == 200, body
    return w


# ------------------------------------------------------------------ keychain playbooks


def keychain_playbook(path: str, keychain_yaml: str) -> str:
    return (
        textwrap.dedent(
            f"""
        apiVersion: noetl.io/v2
        kind: Playbook
        metadata: {{name: {path.rsplit("/", 1)[-1]}, path: {path}}}
        workload: {{env: prod, cred_name: stored-db}}
        keychain:
        """
        )
        + textwrap.indent(textwrap.dedent(keychain_yaml).strip("\n"), "  ")
        + textwrap.dedent(
            """
        workflow:
          - step: start
            tool: {kind: noop}
        """
        )
    )


async def start_execution(api: Api, path: str, keychain_yaml: str) -> tuple[int, int]:
    """Register a playbook with a keychain section and start it; returns (catalog_id, execution_id)."""
    reg = await register(api, keychain_playbook(path, keychain_yaml))
    status, started = await api.post("/api/execute", json={"path": path})
    assert status == 200, started
    return int(reg["catalog_id"]), int(started["execution_id"])


AsyncCheck = Callable[[], Awaitable[Any]]


# ------------------------------------------------------------------ a generic fake HTTP peer (broker stand-in)


@dataclass
class FakePeer:
    url: str = ""
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    status: int = 200
    body: str = "{}"


@pytest.fixture
async def peer() -> AsyncIterator[FakePeer]:
    """Answers every request with (status, body) and records (path, headers, body)."""
    fake = FakePeer()

    async def handler(request: web.Request) -> web.Response:
        fake.requests.append((request.path, dict(request.headers), await request.read()))
        return web.Response(status=fake.status, text=fake.body, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    await runner.cleanup()
