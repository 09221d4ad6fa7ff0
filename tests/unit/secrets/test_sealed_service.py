"""Sealed endpoint and broker endpoint flows, incl. a real cross-region hop (§3.2, §6.2, §12.1 14, §12.5)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from app.errors import BadRequest, Forbidden, NotFound
from app.secrets import sealed
from app.secrets.broker import BrokerClient, parse_broker_registry
from app.secrets.encoding import b64encode
from app.secrets.errors import BrokerDenied, BrokerUnreachable, ResidencyViolation
from app.secrets.resolver import StartEvent
from app.secrets.sealed_service import SealedService

from .test_resolver import NOW, PLAYBOOK, Harness

WORKER = X25519PrivateKey.generate()
WORKER_B64 = b64encode(sealed.public_key_bytes(WORKER))


def _service(h: Harness, registry: dict[str, str] | None = None, token: str = "btok") -> SealedService:
    broker = BrokerClient(registry or {}, token, h.metrics)
    return SealedService(
        h.resolver, broker, h.metrics, h.audit, server_region=h.resolver.server_region, clock=lambda: NOW
    )


def _keys(mapping: dict[str, str | None]):  # type: ignore[no-untyped-def]
    async def lookup(worker_id: str) -> str | None:
        return mapping.get(worker_id)

    return lookup


async def test_sealed_ok_matches_get_body() -> None:  # case 40 (library half)
    h = Harness()
    await h.store("pg", {"user": "u", "password": "p"})
    svc = _service(h)
    env = await svc.get_sealed("pg", "w1", _keys({"w1": WORKER_B64}), execution_id=7)
    plain = sealed.open_sealed(WORKER, env)
    doc = json.loads(plain)
    assert list(doc) == ["id", "name", "type", "data", "created_at", "updated_at"]
    assert doc["data"] == {"password": "p", "user": "u"}
    assert h.m("noetl_credentials_sealed_total", status="ok") == 1
    await h.audit.drain()
    row = h.audit_rows[-1]
    assert (row.operation, row.outcome, row.worker_id, row.kek_version) == ("get_sealed", "ok", "w1", "v1")


async def test_sealed_pubkey_failures() -> None:  # cases 14, 40
    h = Harness()
    svc = _service(h)
    with pytest.raises(BadRequest) as ei:
        await svc.get_sealed("pg", "w0", _keys({}))
    assert str(ei.value).startswith(
        "worker 'w0' did not register a sealing pubkey (worker_public_key missing"
    )
    with pytest.raises(BadRequest, match="worker_public_key base64"):
        await svc.get_sealed("pg", "w1", _keys({"w1": "abc"}))
    with pytest.raises(BadRequest, match="not a valid X25519 public key"):
        await svc.get_sealed("pg", "w2", _keys({"w2": b64encode(bytes(32))}))
    assert h.m("noetl_credentials_sealed_total", status="no_pubkey") == 1
    assert h.m("noetl_credentials_sealed_total", status="worker_not_found") == 2


async def test_sealed_map_entry_and_mapless_string() -> None:  # case 41
    h = Harness()
    svc = _service(h)
    env = await svc.get_sealed("db", "w1", _keys({"w1": WORKER_B64}), execution_id=7)
    doc = json.loads(sealed.open_sealed(WORKER, env))
    assert (
        doc["id"] == "0"
        and doc["type"] == "keychain"
        and doc["data"] == {"password": h.provider.values["secret/db#password"], "user": "admin"}
    )
    env = await svc.get_sealed("plain", "w1", _keys({"w1": WORKER_B64}), execution_id=7)
    assert isinstance(json.loads(sealed.open_sealed(WORKER, env))["data"], str)  # the worker rejects this


async def test_sealed_credential_error() -> None:
    h = Harness()
    with pytest.raises(NotFound):
        await _service(h).get_sealed("nope", "w1", _keys({"w1": WORKER_B64}), execution_id=7)
    assert h.m("noetl_credentials_sealed_total", status="credential_error") == 1


async def test_residency_without_broker_and_no_fallback(serve) -> None:  # case 58 (invalid registry), 59
    h = Harness()
    with pytest.raises(ResidencyViolation):
        await _service(h, parse_broker_registry("{nope")).get_sealed(
            "eu-only", "w1", _keys({"w1": WORKER_B64}), execution_id=7
        )
    assert h.m("noetl_credentials_sealed_total", status="residency_violation") == 1

    async def never(req: web.Request) -> web.Response:
        raise AssertionError("the broker must not be called")

    srv = await serve(never)
    h.starts[9] = StartEvent(300, {})
    h.catalogs[300] = PLAYBOOK + (
        "  - name: locked\n    provider: vault\n    region: eu-central-1\n"
        "    residency: strict\n    no_broker_fallback: true\n"
    )
    with pytest.raises(ResidencyViolation):
        await _service(h, {"eu-central-1": srv.url}).get_sealed(
            "locked", "w1", _keys({"w1": WORKER_B64}), execution_id=9
        )
    assert srv.requests == []
    assert h.m("noetl_credentials_sealed_total", status="residency_violation") == 2


async def _broker_app(serve, eu: Harness, token: str = "btok"):  # type: ignore[no-untyped-def]
    """A broker server in eu-central-1 whose route delegates to SealedService.serve_broker."""
    svc = _service(eu)

    async def handler(req: web.Request) -> web.Response:
        if req.headers.get("Authorization") != f"Bearer {token}":
            return web.json_response({"detail": None, "error": "forbidden", "status": 403}, status=403)
        body: dict[str, Any] = json.loads(await req.read())
        try:
            env = await svc.serve_broker(**body)
        except (Forbidden, BadRequest, NotFound) as exc:
            return web.json_response(
                {"detail": None, "error": str(exc), "status": exc.status}, status=exc.status
            )
        return web.Response(text=env, content_type="application/json")

    return await serve(handler)


async def test_cross_region_hop_end_to_end(serve) -> None:  # cases 58, 60
    eu = Harness(server_region="eu-central-1")
    srv = await _broker_app(serve, eu)
    us = Harness()
    env = await _service(us, {"eu-central-1": srv.url}).get_sealed(
        "eu-only", "w1", _keys({"w1": WORKER_B64}), execution_id=7, parent_execution_id=2
    )
    doc = json.loads(sealed.open_sealed(WORKER, env))
    assert doc["data"] == "eu" and doc["name"] == "eu-only"
    sent = json.loads(srv.requests[0].body)
    assert sent == {
        "alias": "eu-only",
        "worker_public_key_b64": WORKER_B64,
        "worker_id": "w1",
        "execution_id": 7,
        "parent_execution_id": 2,
        "expected_entry_region": "eu-central-1",
        "requesting_region": "us-east-1",
    }
    assert us.provider.calls == []  # cleartext never resolved in us-east-1
    assert us.m("noetl_credentials_sealed_total", status="ok_via_broker") == 1
    assert us.m("noetl_secret_broker_call_total", broker_region="eu-central-1", outcome="ok") == 1
    assert eu.m("noetl_secret_broker_call_total", broker_region="eu-central-1", outcome="ok") == 1
    await us.audit.drain()
    await eu.audit.drain()
    assert us.audit_rows[-1].broker_region == "eu-central-1" and us.audit_rows[-1].operation == "get_sealed"
    assert eu.audit_rows[-1].operation == "cross_region_broker_serve" and eu.audit_rows[-1].outcome == "ok"


async def test_broker_denials_and_failures(serve) -> None:
    wrong = Harness(server_region="eu-west-1")  # a stale registry points at the wrong region
    srv = await _broker_app(serve, wrong)
    us = Harness()
    with pytest.raises(BrokerDenied, match="this server is in region 'eu-west-1', not 'eu-central-1'"):
        await _service(us, {"eu-central-1": srv.url}).get_sealed(
            "eu-only", "w1", _keys({"w1": WORKER_B64}), execution_id=7
        )
    assert (
        us.m("noetl_secret_broker_call_total", broker_region="eu-central-1", outcome="denied_by_broker") == 1
    )
    assert (
        wrong.m("noetl_secret_broker_call_total", broker_region="eu-central-1", outcome="wrong_region") == 1
    )

    async def boom(req: web.Request) -> web.Response:
        return web.Response(status=500, text="kaput")

    srv2 = await serve(boom)
    with pytest.raises(BrokerUnreachable) as ei:
        await _service(us, {"eu-central-1": srv2.url}).get_sealed(
            "eu-only", "w1", _keys({"w1": WORKER_B64}), execution_id=7
        )
    assert ei.value.status == 502
    assert str(ei.value) == (
        f"Cross-region broker {srv2.url} unreachable: broker returned HTTP 500 Internal Server Error: kaput"
    )
    await us.audit.drain()
    assert us.audit_rows[-1].outcome == "broker_unreachable"


async def test_broker_serve_checks() -> None:  # case 60
    eu = Harness(server_region="eu-central-1")
    svc = _service(eu)
    base = dict(
        alias="eu-only",
        worker_id="w",
        execution_id=7,
        parent_execution_id=None,
        expected_entry_region="eu-central-1",
        requesting_region="us-east-1",
    )
    env = await svc.serve_broker(worker_public_key_b64=f"  {WORKER_B64}\n", **base)
    assert json.loads(sealed.open_sealed(WORKER, env))["data"] == "eu"
    with pytest.raises(BadRequest, match="expected 32 bytes, got 31"):
        await svc.serve_broker(worker_public_key_b64=b64encode(bytes(31)), **base)
    with pytest.raises(NotFound):
        await svc.serve_broker(worker_public_key_b64=WORKER_B64, **{**base, "alias": "unknown"})
    assert eu.m("noetl_secret_broker_call_total", broker_region="eu-central-1", outcome="bad_pubkey") == 1
    assert eu.m("noetl_secret_broker_call_total", broker_region="eu-central-1", outcome="resolve_error") == 1
