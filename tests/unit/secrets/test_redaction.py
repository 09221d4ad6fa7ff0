"""Secret values never appear in reprs, error messages, logs or metrics."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest
from aiohttp import web
from prometheus_client import generate_latest

from app.config.secrets import ProviderSettings, SecretsSettings
from app.secrets import blob, sealed
from app.secrets.broker import BrokerClient
from app.secrets.encoding import b64encode
from app.secrets.envelope import EnvelopeCipher, Rewrapped
from app.secrets.errors import ProviderFetchError, SecretConfigError
from app.secrets.keys import LocalDevKms, WrappedDek
from app.secrets.providers import aws, k8s, vault
from app.secrets.providers.base import SecretRef, SecretValue
from app.secrets.resolver import CacheHit, CacheWrite, CredentialRecord, Resolved

from .helpers import metrics
from .test_resolver import Harness

SECRET = "Xy9-TOP-SECRET-value-42"
MASTER = bytes(range(32))


def test_reprs_hide_values() -> None:
    objs = [
        SecretValue(SECRET, "1"),
        Resolved("keychain", {"p": SECRET}),
        CacheHit(SECRET, None),
        CacheWrite("k", "n", 1, 2, SECRET, datetime.now(UTC)),
        CredentialRecord(1, "n", "t", SECRET),
        WrappedDek("local", "kid", "v1", SECRET.encode()),
        sealed.SealedEnvelope("a", 1, "e", SECRET),
        Rewrapped("v1", "v2", SECRET),
        LocalDevKms(MASTER),
        EnvelopeCipher(LocalDevKms(MASTER)),
        BrokerClient({"eu": "http://x"}, SECRET, metrics()[0]),
        ProviderSettings.model_validate(
            {
                "AWS_SECRET_ACCESS_KEY": SECRET,
                "VAULT_TOKEN": SECRET,
                "NOETL_K8S_TOKEN": SECRET,
                "AZURE_KEYVAULT_TOKEN": SECRET,
                "AZURE_CLIENT_SECRET": SECRET,
                "AWS_SESSION_TOKEN": SECRET,
            }
        ),
        SecretsSettings.model_validate(
            {"NOETL_ENCRYPTION_KEY": b64encode(MASTER), "NOETL_SECRET_BROKER_TOKEN": SECRET}
        ),
        aws.build(
            ProviderSettings.model_validate(
                {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": "us-east-1"}
            ),
            "",
        ),
    ]
    for o in objs:
        assert SECRET not in repr(o), type(o)
        assert b64encode(MASTER) not in repr(o)


async def test_crypto_errors_never_echo_plaintext() -> None:
    cipher = EnvelopeCipher(LocalDevKms(MASTER))
    stored = await cipher.seal({"password": SECRET})
    for bad in [EnvelopeCipher(LocalDevKms(bytes(32)))]:
        with pytest.raises(Exception) as ei:
            await bad.open(stored)
        assert SECRET not in str(ei.value)
    d = json.loads(stored)
    dek = bytes(range(32))
    d["ct"] = b64encode(blob.encrypt(dek, f"not json {SECRET}".encode()))
    with pytest.raises(Exception) as ei:
        blob.decrypt_json(dek, blob.encrypt(dek, f"{{{SECRET}".encode()))
    assert SECRET not in str(ei.value)
    env = sealed.seal(sealed.public_key_bytes(sealed.X25519PrivateKey.generate()), SECRET.encode())
    with pytest.raises(Exception) as ei:
        sealed.open_sealed(sealed.X25519PrivateKey.generate(), env.to_json())
    assert SECRET not in str(ei.value)


async def test_provider_errors_never_echo_values(serve, tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def h(req: web.Request) -> web.Response:
        if req.path.startswith("/v1/"):
            return web.json_response(
                {"data": {"data": {"n": 12345, "s": SECRET, "o": {"x": SECRET}}, "metadata": {"version": 1}}}
            )
        if req.path.startswith("/api/"):
            return web.json_response(
                {"data": {"k": SECRET + "!!", "j": b64encode(b"\xff" + SECRET.encode())}}
            )
        body = json.dumps(
            {"SecretString": json.dumps({"obj": {"p": SECRET}, "arr": [SECRET]}), "VersionId": "1"}
        )
        return web.Response(text=body)

    srv = await serve(h)
    ps = ProviderSettings.model_validate(
        {
            "VAULT_ADDR": srv.url,
            "VAULT_TOKEN": "t",
            "NOETL_K8S_API_URL": srv.url,
            "NOETL_K8S_TOKEN": "t",
            "AWS_ACCESS_KEY_ID": "a",
            "AWS_SECRET_ACCESS_KEY": "b",
            "AWS_REGION": "us-east-1",
            "NOETL_AWS_SM_ENDPOINT": srv.url,
        }
    )
    v, k, a = vault.build(ps, ""), k8s.KubernetesSecrets(ps, sa_dir=str(tmp_path)), aws.build(ps, "")
    cases = [
        (v, "p#o"),
        (v, "p"),
        (k, "s/k"),
        (k, "s/j"),
        (k, "s"),
        (a, "x#obj"),
        (a, "x#arr"),
        (a, "x#missing"),
    ]
    for provider, ref in cases:
        with pytest.raises((ProviderFetchError, SecretConfigError)) as ei:
            await provider.fetch(SecretRef(ref))
        assert SECRET not in str(ei.value), ref
        assert SECRET not in repr(ei.value), ref
    for p in (v, k, a):
        await p.close()


async def test_logs_and_metrics_never_carry_values(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    h = Harness()
    h.provider.values["plain"] = SECRET
    await h.resolver.resolve("plain", 7)
    await h.resolver.resolve("plain", 7)
    h.provider.fail = {"secret/db#user"}
    with pytest.raises(ProviderFetchError):
        await h.resolver.resolve("db", 7)
    h.audit_fail = True
    await h.resolver.resolve("plain", 7)
    await h.audit.drain()
    assert SECRET not in caplog.text
    scrape = generate_latest(h.reg).decode()
    assert SECRET not in scrape
    assert "execution_id" not in scrape and "plain" not in scrape and "alias" not in scrape
