"""Composition root and CredentialResponse bytes (sealed plaintext = GET body, §3.1, §10, §12.3 helpers)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from prometheus_client import CollectorRegistry

from app.config.secrets import SecretsSettings
from app.errors import ConfigError
from app.secrets import sealed
from app.secrets.audit import AuditEvent
from app.secrets.errors import CipherNotConfigured
from app.secrets.resolver import CredentialRecord, Resolved
from app.secrets.response import credential_response_json, response_for
from app.secrets.wallet import SecretsWallet

from .test_sealed import CRED_ENV

VECTOR_PLAIN = (
    '{"id":"1234567890","name":"duffel-token","type":"bearer","data":{"token":"sk-test-AbCdEf123"},'
    '"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}'
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_vector_plaintext_bytes() -> None:
    assert (
        credential_response_json(
            id=1234567890,
            name="duffel-token",
            type="bearer",
            data={"token": "sk-test-AbCdEf123"},
            created_at=T0,
            updated_at=T0,
        )
        == VECTOR_PLAIN
    )
    bob = X25519PrivateKey.from_private_bytes(
        bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    )
    alice = X25519PrivateKey.from_private_bytes(
        bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    )
    env = sealed.seal(sealed.public_key_bytes(bob), VECTOR_PLAIN.encode(), ephemeral=alice)
    assert env.to_json() == CRED_ENV


def test_optional_fields_and_canonical_data() -> None:
    body = credential_response_json(
        id=5,
        name="n",
        type="t",
        meta={"b": 1, "a": {"d": 2, "c": "é\u0001"}},
        tags=["x"],
        description="d",
        data={"z": 1, "a": [3, {"y": 1, "x": 2}]},
        created_at=datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC),
        updated_at=datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC),
    )
    assert body == (
        '{"id":"5","name":"n","type":"t","meta":{"a":{"c":"é\\u0001","d":2},"b":1},"tags":["x"],"description":"d",'
        '"data":{"a":[3,{"x":2,"y":1}],"z":1},"created_at":"2026-01-01T00:00:00.500Z",'
        '"updated_at":"2026-01-01T00:00:00.123456Z"}'
    )
    assert '"data"' not in credential_response_json(id=1, name="n", type="t", created_at=T0, updated_at=T0)


def test_response_for_keychain_and_record() -> None:
    kc = response_for(Resolved("keychain", {"b": "2", "a": "1"}), "alias", now=T0)
    assert kc == (
        '{"id":"0","name":"alias","type":"keychain","description":"resolved from keychain provider",'
        '"data":{"a":"1","b":"2"},"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}'
    )
    rec = CredentialRecord(9, "pg", "postgres", "x", created_at=T0, updated_at=T0)
    assert response_for(Resolved("credential", "s", record=rec), "9") == (
        '{"id":"9","name":"pg","type":"postgres","data":"s","created_at":"2026-01-01T00:00:00Z",'
        '"updated_at":"2026-01-01T00:00:00Z"}'
    )


async def _noop(_: AuditEvent) -> None:
    return None


async def test_wallet_build() -> None:
    s = SecretsSettings.model_validate(
        {
            "NOETL_ENCRYPTION_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            "NOETL_SECRET_BROKER_REGISTRY": '{"eu-central-1": "https://b"}',
            "NOETL_SECRET_AUDIT_REQUIRED": "true",
        }
    )
    w = SecretsWallet.build(
        prom_registry=CollectorRegistry(),
        audit_writer=_noop,
        id_factory=lambda: 1,
        server_region="us-east-1",
        internal_api_token="itok",
        settings=s,
    )
    assert w.cipher is not None and w.audit.strict and w.broker.url_for("eu-central-1") == "https://b"
    assert await w.require_cipher().open(await w.require_cipher().seal({"a": 1})) == {"a": 1}
    await w.close()
    empty = SecretsWallet.build(
        prom_registry=CollectorRegistry(),
        audit_writer=_noop,
        id_factory=lambda: 1,
        settings=SecretsSettings.model_validate({}),
    )
    with pytest.raises(CipherNotConfigured):
        empty.require_cipher()
    with pytest.raises(ConfigError):
        SecretsWallet.build(
            prom_registry=CollectorRegistry(),
            audit_writer=_noop,
            id_factory=lambda: 1,
            settings=SecretsSettings.model_validate({"NOETL_ENCRYPTION_KEY": "AAAA"}),
        )


def test_pinned_metrics() -> None:
    reg = CollectorRegistry()
    SecretsWallet.build(
        prom_registry=reg,
        audit_writer=_noop,
        id_factory=lambda: 1,
        settings=SecretsSettings.model_validate({}),
    )
    for status in (
        "ok",
        "ok_via_broker",
        "no_pubkey",
        "worker_not_found",
        "residency_violation",
        "credential_error",
        "seal_error",
    ):
        assert reg.get_sample_value("noetl_credentials_sealed_total", {"status": status}) == 0
    for outcome in ("triggered", "stampede_collapsed", "succeeded", "failed", "decision_failed"):
        assert reg.get_sample_value("noetl_secret_refresh_total", {"outcome": outcome}) == 0
