"""A keyed control-plane server for the worker's credential and playbook-tool tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from app.secrets.encoding import b64encode
from app.secrets.sealed import public_key_bytes
from tests.support.server import Api, make_settings, running_api
from tests.support.simple_api import SimpleApi

KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # bytes 0x00..0x1f (secrets.md §10)


def keyed_settings(db_dsn: str, nats_url: str | None = None, **env: str) -> Any:
    return make_settings(db_dsn, nats_url, NOETL_ENCRYPTION_KEY=KEY, **env)


@pytest.fixture
async def keyed_api(db_dsn: str) -> AsyncIterator[Api]:
    async with running_api(keyed_settings(db_dsn)) as api:
        yield api


@pytest.fixture
async def server_api(keyed_api: Api) -> AsyncIterator[SimpleApi]:
    async with SimpleApi(keyed_api.url) as api:
        yield api


async def store_credential(api: Api, name: str, type_: str, data: dict[str, Any]) -> None:
    status, body = await api.post("/api/credentials", json={"name": name, "type": type_, "data": data})
    assert status == 200, body


async def register_worker_key(
    api: Api, worker_id: str, sk: X25519PrivateKey | None = None
) -> X25519PrivateKey:
    """Register `worker_id` with the public half of `sk` (a fresh key when not given)."""
    sk = sk or X25519PrivateKey.generate()
    runtime = {"kind": "python", "worker_public_key": b64encode(public_key_bytes(sk))}
    status, body = await api.post(
        "/api/worker/pool/register",
        json={"name": worker_id, "component_type": "worker_pool", "runtime": runtime, "status": "ready"},
    )
    assert status == 200, body
    return sk
