"""Start-up key handling (§12 case 27) and a scan of logs, error bodies and /metrics for secret values."""

from __future__ import annotations

import json
import logging
from contextlib import AsyncExitStack

import pytest

from app.bootstrap import build_deps
from app.errors import ConfigError
from app.secrets.encoding import b64encode
from tests.integration.secrets.conftest import (
    AUTH,
    KEY,
    FakeVault,
    register_worker,
    settings,
    start_execution,
)
from tests.support.server import running_api

NOT_CONFIGURED = "NOETL_ENCRYPTION_KEY is not configured"


@pytest.mark.parametrize("key", ["", "   "])
async def test_unset_key_starts_and_cipher_routes_answer_500(db_dsn: str, key: str) -> None:
    async with running_api(settings(db_dsn, NOETL_ENCRYPTION_KEY=key)) as api:
        assert api.deps.wallet is not None and api.deps.wallet.wallet.cipher is None
        calls = [
            ("POST", "/api/credentials", {"name": "a", "type": "x", "data": {}}),
            ("GET", "/api/credentials/a?include_data=true", None),
            ("GET", "/api/credentials/a/sealed?worker_id=w", None),
            ("GET", "/api/keychain/1/n", None),
            ("POST", "/api/keychain/1/n", {"data": 1, "expires_in": 5}),
            ("POST", "/api/internal/wallet/rotate-kek", {}),
        ]
        for method, path, body in calls:
            status, err, _ = await api.request(method, path, json=body, headers=AUTH)
            assert status == 500 and err["error"] == NOT_CONFIGURED, path
        # the rest of the server works
        assert (await api.get("/api/credentials"))[0] == 200
        assert (await api.get("/api/internal/wallet/key-status", headers=AUTH))[0] == 200
        assert (await api.get("/health"))[0] == 200


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        (b64encode(bytes(16)), "Invalid key length: expected 32 bytes, got 16"),
        ("not base64!", "Invalid base64 key"),
    ],
)
async def test_malformed_key_refuses_to_start(db_dsn: str, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        async with AsyncExitStack() as stack:
            await build_deps(settings(db_dsn, NOETL_ENCRYPTION_KEY=key), stack, with_bus=False)
    assert "NOETL_ENCRYPTION_KEY" in str(info.value) and fragment in str(info.value)
    assert key not in str(info.value) or key == ""


async def test_kms_provider_errors_refuse_to_start(db_dsn: str) -> None:
    with pytest.raises(ConfigError, match="unknown NOETL_KMS_PROVIDER 'vault-xyz'"):
        async with AsyncExitStack() as stack:
            await build_deps(settings(db_dsn, NOETL_KMS_PROVIDER="vault-xyz"), stack, with_bus=False)


async def test_insecure_flag_random_key_and_explicit_key_wins(db_dsn: str) -> None:
    async with running_api(
        settings(db_dsn, NOETL_ENCRYPTION_KEY="", NOETL_ALLOW_INSECURE_DEFAULT_KEY="YES")
    ) as a:
        assert (await a.post("/api/credentials", json={"name": "r1", "type": "x", "data": {"v": 1}}))[
            0
        ] == 200
        assert (await a.get("/api/credentials/r1?include_data=true"))[0] == 200
    async with running_api(
        settings(db_dsn, NOETL_ENCRYPTION_KEY="", NOETL_ALLOW_INSECURE_DEFAULT_KEY="YES")
    ) as b:
        status, err = await b.get("/api/credentials/r1?include_data=true")
        assert status == 500 and "Decryption failed" in err["error"]  # a new random key per start
    async with running_api(settings(db_dsn)) as keyed:
        await keyed.post("/api/credentials", json={"name": "k1", "type": "x", "data": {"v": 2}})
    async with running_api(settings(db_dsn, NOETL_ALLOW_INSECURE_DEFAULT_KEY="true")) as both:
        status, body = await both.get("/api/credentials/k1?include_data=true")
        assert status == 200 and body["data"] == {"v": 2}


async def test_no_secret_value_in_logs_errors_or_metrics(
    db_dsn: str, vault: FakeVault, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = ["leak-pw-Q1w2E3", "leak-token-Z9x8", "leak-vault-M4n5", "leak-eu-P6o7"]
    vault.values = {"app/prod/db": secrets[2], "eu/db": secrets[3]}
    keychain = """
- name: kc
  provider: vault
  map: {password: "app/{{ env }}/db"}
- name: broken
  provider: vault
  map: {password: "app/missing"}
- name: eu
  provider: vault
  region: eu-central-1
  residency: strict
  map: {password: "eu/db"}
"""
    bodies: list[str] = []
    async with running_api(settings(db_dsn, NOETL_SERVER_REGION="us-east-1", NOETL_LOG_LEVEL="debug")) as api:
        _, eid = await start_execution(api, "tests/secrets/leaks", keychain)
        worker = await register_worker(api, "w-leak")
        await register_worker(api, "w-bad", public_key="abc")
        await api.post(
            "/api/credentials", json={"name": "db", "type": "postgres", "data": {"password": secrets[0]}}
        )
        await api.post("/api/credentials", json={"name": "tok", "type": "bearer", "data": secrets[1]})
        await api.post("/api/keychain/1/x", json={"data": secrets[1], "expires_in": 60})  # unknown catalog
        requests = [
            f"/api/credentials/kc?include_data=true&execution_id={eid}",
            f"/api/credentials/kc/sealed?worker_id=w-leak&execution_id={eid}",
            f"/api/credentials/broken?include_data=true&execution_id={eid}",
            f"/api/credentials/eu?include_data=true&execution_id={eid}",
            f"/api/credentials/eu/sealed?worker_id=w-leak&execution_id={eid}",
            "/api/credentials/db/sealed?worker_id=w-bad",
            "/api/credentials/db/sealed?worker_id=ghost",
            "/api/credentials/db",
            "/api/credentials",
            "/api/credentials/nope?include_data=true",
        ]
        for path in requests:
            async with api.http.get(api.url + path) as r:
                text = await r.text()
                if r.status >= 400:
                    bodies.append(text)
        async with api.http.get(api.url + "/api/credentials/db/sealed?worker_id=w-leak") as r:
            assert json.loads(worker.open(await r.text()))["data"] == {"password": secrets[0]}
        async with api.http.get(api.url + "/api/internal/secret-audit?limit=10000", headers=AUTH) as r:
            audit = await r.text()
        async with api.http.get(api.url + "/metrics") as r:
            metrics = await r.text()
    async with running_api(
        settings(db_dsn, NOETL_ENCRYPTION_KEY=b64encode(bytes(range(1, 33))), NOETL_LOG_LEVEL="debug")
    ) as wrong_key:
        async with wrong_key.http.get(wrong_key.url + "/api/credentials/db?include_data=true") as r:
            assert r.status == 500
            bodies.append(await r.text())
    assert len(bodies) >= 7
    haystacks = {"logs": caplog.text, "errors": "\n".join(bodies), "metrics": metrics, "audit": audit}
    for where, text in haystacks.items():
        for value in [*secrets, KEY, "vault-test-token"]:
            assert value not in text, f"{value!r} leaked into {where}"
    assert "noetl_credentials_sealed_total" in metrics and "noetl_secret_residency_check_total" in metrics
