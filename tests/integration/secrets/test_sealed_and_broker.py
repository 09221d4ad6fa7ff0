"""Sealed delivery, keychain resolution through a provider, residency and the cross-region broker
(secrets.md §3.2, §4.2, §6.1, §6.2; §12 cases 14, 40, 41, 55, 57, 58, 59, 60)."""

from __future__ import annotations

import json

import asyncpg

from app.secrets.encoding import b64encode
from tests.integration.secrets.conftest import (
    AUTH,
    FakePeer,
    FakeVault,
    register_worker,
    sample,
    settings,
    start_execution,
)
from tests.support.server import Api, running_api

SEALED = "noetl_credentials_sealed_total"

KEYCHAIN = """
- name: vault_db
  provider: vault
  map: {password: "app/{{ env }}/db"}
- name: api_token
  provider: vault
- name: stored_alias
  kind: credential
  credential: "{{ cred_name }}"
- name: eu_db
  provider: vault
  region: eu-central-1
  residency: strict
  map: {password: "app/{{ env }}/db"}
- name: eu_db_pinned
  provider: vault
  region: eu-central-1
  residency: strict
  no_broker_fallback: true
  map: {password: "app/{{ env }}/db"}
"""


async def test_sealed_stored_credential(api: Api) -> None:
    await api.post("/api/credentials", json={"name": "duffel", "type": "bearer", "data": {"token": "sk-1"}})
    # 40: missing worker_id → 400
    status, body = await api.get("/api/credentials/duffel/sealed")
    assert status == 400 and body["status"] == 400
    # unregistered worker → 400 + no_pubkey
    status, body = await api.get("/api/credentials/duffel/sealed?worker_id=ghost")
    assert status == 400
    assert body["error"] == (
        "worker 'ghost' did not register a sealing pubkey (worker_public_key missing from the noetl.runtime "
        "row, or the worker_pool row doesn't exist)"
    )
    assert sample(api, SEALED, status="no_pubkey") == 1
    # a registered row without a key is also no_pubkey
    await api.post(
        "/api/worker/pool/register", json={"name": "keyless", "component_type": "worker_pool", "runtime": {}}
    )
    assert (await api.get("/api/credentials/duffel/sealed?worker_id=keyless"))[0] == 400
    assert sample(api, SEALED, status="no_pubkey") == 2
    # worker_public_key "abc" → 400 + worker_not_found
    await register_worker(api, "bad-key", public_key="abc")
    status, body = await api.get("/api/credentials/duffel/sealed?worker_id=bad-key")
    assert status == 400 and body["error"].startswith("worker 'bad-key' worker_public_key base64:")
    assert sample(api, SEALED, status="worker_not_found") == 1
    # 14: a low-order key → 400, label worker_not_found
    await register_worker(api, "low-order", public_key=b64encode(bytes(32)))
    status, body = await api.get("/api/credentials/duffel/sealed?worker_id=low-order")
    assert status == 400
    assert body["error"] == "worker 'low-order' worker_public_key is not a valid X25519 public key"
    assert sample(api, SEALED, status="worker_not_found") == 2
    # success: the worker opens exactly the GET body
    worker = await register_worker(api, "w-1")
    async with api.http.get(f"{api.url}/api/credentials/duffel/sealed?worker_id=w-1") as r:
        assert r.status == 200
        envelope = await r.text()
    env = json.loads(envelope)
    assert list(env) == ["alg", "v", "eph_pub", "ciphertext"]
    async with api.http.get(f"{api.url}/api/credentials/duffel?include_data=true") as r:
        plain = await r.read()
    assert worker.open(envelope) == plain
    assert json.loads(plain)["data"] == {"token": "sk-1"}
    assert sample(api, SEALED, status="ok") == 1
    # unknown credential → 404, label credential_error
    status, body = await api.get("/api/credentials/nope/sealed?worker_id=w-1")
    assert status == 404 and sample(api, SEALED, status="credential_error") == 1


async def test_keychain_entries_through_a_provider(api: Api, vault: FakeVault, db_dsn: str) -> None:
    vault.values = {"app/prod/db": "pw-prod-77", "api_token": "tok-xyz-88"}
    catalog_id, eid = await start_execution(api, "tests/secrets/kc", KEYCHAIN)
    worker = await register_worker(api, "w-kc")
    # 41: a map entry → an object the worker opens
    status, envelope = await api.get(f"/api/credentials/vault_db/sealed?worker_id=w-kc&execution_id={eid}")
    assert status == 200, envelope
    opened = json.loads(worker.open(envelope))
    assert opened["id"] == "0" and opened["type"] == "keychain" and opened["name"] == "vault_db"
    assert opened["data"] == {"password": "pw-prod-77"}
    assert vault.hits == ["app/prod/db"]
    # the second read is a cache hit (no provider call) through the plain route
    status, body = await api.get(f"/api/credentials/vault_db?include_data=true&execution_id={eid}")
    assert status == 200 and body["data"] == {"password": "pw-prod-77"} and vault.hits == ["app/prod/db"]
    # the cache row is encrypted and keyed {alias}:{catalog_id}:{execution_id}
    conn = await asyncpg.connect(db_dsn)
    try:
        row = await conn.fetchrow(
            "SELECT scope_type, data_encrypted, access_count FROM noetl.keychain WHERE cache_key = $1",
            f"vault_db:{catalog_id}:{eid}",
        )
    finally:
        await conn.close()
    assert row["scope_type"] == "local" and "pw-prod-77" not in row["data_encrypted"]
    assert row["access_count"] == 1
    # a map-less entry yields a string data (the worker requires an object)
    status, envelope = await api.get(f"/api/credentials/api_token/sealed?worker_id=w-kc&execution_id={eid}")
    assert status == 200
    assert json.loads(worker.open(envelope))["data"] == "tok-xyz-88"
    # a kind: credential entry renders the template and reads the stored credential
    await api.post("/api/credentials", json={"name": "stored-db", "type": "postgres", "data": {"u": "x"}})
    status, body = await api.get(f"/api/credentials/stored_alias?include_data=true&execution_id={eid}")
    assert status == 200 and body["data"] == {"u": "x"} and body["type"] == "keychain"
    # an unknown alias with an execution → 404
    status, body = await api.get(f"/api/credentials/missing?include_data=true&execution_id={eid}")
    assert status == 404 and body["error"] == "Credential 'missing' not found"


async def test_strict_residency_blocks_before_the_provider(db_dsn: str, vault: FakeVault) -> None:
    vault.values = {"app/prod/db": "pw-eu-99"}
    async with running_api(settings(db_dsn, NOETL_SERVER_REGION="us-east-1")) as api:
        _, eid = await start_execution(api, "tests/secrets/res", KEYCHAIN)
        await register_worker(api, "w-res")
        status, body = await api.get(f"/api/credentials/eu_db?include_data=true&execution_id={eid}")
        assert status == 403
        assert body["error"] == (
            "Residency violation: credential 'eu_db' is region-locked to 'eu-central-1'; "
            "this server is in 'us-east-1'"
        )
        assert vault.hits == []
        status, body = await api.get(f"/api/credentials/eu_db/sealed?worker_id=w-res&execution_id={eid}")
        assert status == 403 and vault.hits == []
        assert sample(api, SEALED, status="residency_violation") == 1
        assert (
            sample(api, "noetl_secret_residency_check_total", policy="strict", decision="violation_blocked")
            == 2
        )
        assert (
            sample(
                api, "noetl_secret_provider_build_total", provider="vault", region="eu-central-1", status="ok"
            )
            == 0
        )
        assert "pw-eu-99" not in json.dumps(body)


async def test_cache_hits_are_residency_gated(db_dsn: str, vault: FakeVault) -> None:
    """57: a value cached by the home-region server is still denied in another region."""
    vault.values = {"app/prod/db": "pw-eu-57"}
    async with running_api(settings(db_dsn, NOETL_SERVER_REGION="eu-central-1")) as home:
        _, eid = await start_execution(home, "tests/secrets/cache", KEYCHAIN)
        status, body = await home.get(f"/api/credentials/eu_db?include_data=true&execution_id={eid}")
        assert status == 200 and body["data"] == {"password": "pw-eu-57"}
    async with running_api(settings(db_dsn, NOETL_SERVER_REGION="us-east-1")) as other:
        status, body = await other.get(f"/api/credentials/eu_db?include_data=true&execution_id={eid}")
        assert status == 403
    assert vault.hits == ["app/prod/db"]


async def test_broker_between_two_servers(db_dsn: str, vault: FakeVault) -> None:
    """58/60: A (us-east-1) forwards to B (eu-central-1), which seals straight to A's worker."""
    vault.values = {"app/prod/db": "pw-brokered-58"}
    async with running_api(settings(db_dsn, NOETL_SERVER_REGION="eu-central-1")) as b:
        registry = json.dumps({"eu-central-1": b.url + "/"})
        async with running_api(
            settings(db_dsn, NOETL_SERVER_REGION="us-east-1", NOETL_SECRET_BROKER_REGISTRY=registry)
        ) as a:
            _, eid = await start_execution(a, "tests/secrets/broker", KEYCHAIN)
            worker = await register_worker(a, "w-broker")
            status, envelope = await a.get(
                f"/api/credentials/eu_db/sealed?worker_id=w-broker&execution_id={eid}"
            )
            assert status == 200, envelope
            opened = json.loads(worker.open(envelope))
            assert opened["data"] == {"password": "pw-brokered-58"} and opened["name"] == "eu_db"
            assert sample(a, SEALED, status="ok_via_broker") == 1
            assert (
                sample(a, "noetl_secret_broker_call_total", broker_region="eu-central-1", outcome="ok") == 1
            )
            assert (
                sample(b, "noetl_secret_broker_call_total", broker_region="eu-central-1", outcome="ok") == 1
            )
            # 59: no_broker_fallback → 403 even with a broker registered; the broker is not called
            status, body = await a.get(
                f"/api/credentials/eu_db_pinned/sealed?worker_id=w-broker&execution_id={eid}"
            )
            assert status == 403 and body["error"].startswith("Residency violation:")
            assert (
                sample(b, "noetl_secret_broker_call_total", broker_region="eu-central-1", outcome="ok") == 1
            )
            # the plain route never brokers
            assert (await a.get(f"/api/credentials/eu_db?include_data=true&execution_id={eid}"))[0] == 403

        # 60: the broker endpoint directly
        req = {
            "alias": "eu_db",
            "worker_public_key_b64": " " + worker.public_b64 + "\n",
            "worker_id": "w-broker",
            "execution_id": eid,
            "parent_execution_id": None,
            "expected_entry_region": "eu-central-1",
            "requesting_region": "us-east-1",
        }
        path = "/api/internal/cross-region/resolve"
        status, envelope = await b.post(path, json=req, headers=AUTH)
        assert status == 200
        assert json.loads(worker.open(envelope))["data"] == {"password": "pw-brokered-58"}
        status, body = await b.post(path, json={**req, "expected_entry_region": "ap-south-1"}, headers=AUTH)
        assert status == 403 and "not 'ap-south-1'" in body["error"]
        assert (
            sample(b, "noetl_secret_broker_call_total", broker_region="ap-south-1", outcome="wrong_region")
            == 1
        )
        status, body = await b.post(
            path, json={**req, "worker_public_key_b64": b64encode(bytes(range(31)))}, headers=AUTH
        )
        assert status == 400 and "expected 32 bytes, got 31" in body["error"]
        status, body = await b.post(path, json={**req, "alias": "nope"}, headers=AUTH)
        assert status == 404
        assert (await b.post(path, json=req))[0] == 403  # gated


async def test_broker_failures(db_dsn: str, vault: FakeVault, peer: FakePeer) -> None:
    """58: broker request shape; 500 → 502 unreachable; 403 → 403 denied_by_broker; bad registry → 403."""
    registry = json.dumps({"eu-central-1": peer.url})
    async with running_api(
        settings(db_dsn, NOETL_SERVER_REGION="us-east-1", NOETL_SECRET_BROKER_REGISTRY=registry)
    ) as a:
        _, eid = await start_execution(a, "tests/secrets/brokerfail", KEYCHAIN)
        worker = await register_worker(a, "w-bf")
        url = f"/api/credentials/eu_db/sealed?worker_id=w-bf&execution_id={eid}"
        peer.status, peer.body = 500, '{"error":"boom"}'
        status, body = await a.get(url)
        assert status == 502
        assert body["error"].startswith(
            f"Cross-region broker {peer.url} unreachable: broker returned HTTP 500"
        )
        path, headers, raw = peer.requests[0]
        assert path == "/api/internal/cross-region/resolve"
        assert headers["Authorization"] == "Bearer test-internal-token"
        sent = json.loads(raw)
        assert list(sent) == [
            "alias",
            "worker_public_key_b64",
            "worker_id",
            "execution_id",
            "parent_execution_id",
            "expected_entry_region",
            "requesting_region",
        ]
        assert sent["worker_public_key_b64"] == worker.public_b64 and sent["execution_id"] == eid
        assert (sent["expected_entry_region"], sent["requesting_region"]) == ("eu-central-1", "us-east-1")
        peer.status, peer.body = 403, '{"error":"nope from broker","status":403}'
        status, body = await a.get(url)
        assert status == 403 and body["error"] == "nope from broker"
        assert (
            sample(
                a, "noetl_secret_broker_call_total", broker_region="eu-central-1", outcome="denied_by_broker"
            )
            == 1
        )
        assert vault.hits == []
    async with running_api(
        settings(db_dsn, NOETL_SERVER_REGION="us-east-1", NOETL_SECRET_BROKER_REGISTRY="{not json")
    ) as a2:
        await register_worker(a2, "w-bf2")
        status, body = await a2.get(f"/api/credentials/eu_db/sealed?worker_id=w-bf2&execution_id={eid}")
        assert status == 403 and body["error"].startswith("Residency violation:")
