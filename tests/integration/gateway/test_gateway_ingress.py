"""Push ingress through the gateway against the real server, PostgreSQL and NATS (gateway.md §11)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.auth0 import FakeAuth0, fake_auth0, new_key
from tests.support.gateway import Stack, gateway_stack
from tests.support.playbooks import FANOUT, LINEAR, b64, register
from tests.support.wait import eventually

pytestmark = pytest.mark.integration

KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # wallet KEK for the test (secrets.md §10)
SA = "pubsub-push@proj.iam.gserviceaccount.com"
OIDC_AUD = "https://gateway.test/ingress/events"

ORDERS = """
apiVersion: noetl.io/v2
kind: Subscription
metadata: {name: orders, path: subs/orders}
spec:
  source: webhook
  ingress:
    gateway_path: /ingress/orders
    verify: {type: hmac_sha256, header: X-Signature, secret: orders_hook}
  dispatch: {playbook: tests/linear}
  headers:
    directives:
      - {header: x-route, controls: dispatch.playbook, allowed: [tests/fanout]}
      - {header: x-idem, controls: idempotency_key}
"""

TOKENED = """
apiVersion: noetl.io/v2
kind: Subscription
metadata: {name: tokened, path: subs/tokened}
spec:
  ingress:
    gateway_path: /ingress/tokened
    verify: {type: bearer, header: x-hook-token, secret: tokened_hook}
  dispatch: {playbook: tests/linear, payload_from: message.body}
"""

PUSHED = f"""
apiVersion: noetl.io/v2
kind: Subscription
metadata: {{name: pushed, path: subs/pushed}}
spec:
  source: pubsub
  ingress:
    gateway_path: /ingress/pushed
    verify: {{type: pubsub_oidc, audience: "{OIDC_AUD}", service_account: {SA}}}
  dispatch: {{playbook: tests/linear}}
"""

MISSING_SECRET = """
apiVersion: noetl.io/v2
kind: Subscription
metadata: {name: broken, path: subs/broken}
spec:
  ingress:
    gateway_path: /ingress/broken
    verify: {type: hmac_sha256, secret: no_such_alias}
  dispatch: {playbook: tests/linear}
"""


@dataclass
class Ingress:
    st: Stack
    google: FakeAuth0

    async def post(self, listener: str, body: bytes, **headers: str) -> tuple[int, Any]:
        return await self.st.post(f"/ingress/{listener}", data=body, headers=headers)

    async def executions(self) -> int:
        return int(await self.st.api.deps.pool.fetchval("SELECT count(*) FROM execution"))

    async def execution(self, eid: str) -> Any:
        async def row() -> Any:
            return await self.st.api.deps.pool.fetchrow(
                "SELECT path, workload, parent_execution_id FROM execution WHERE execution_id = $1", int(eid)
            )

        return await eventually(row, what=f"execution {eid}")

    def oidc(self, **claims: Any) -> str:
        base: dict[str, Any] = {
            "aud": OIDC_AUD,
            "email": SA,
            "email_verified": True,
            "iss": "https://accounts.google.com",
        }
        return "Bearer " + self.google.token(sub="1234", **{**base, **claims})


def sign(body: bytes, secret: str = "topsecret") -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def _subscribe(st: Stack, text: str) -> str:
    status, out = await st.api.post(
        "/api/catalog/register", json={"content": b64(text), "resource_type": "Subscription"}
    )
    assert status == 200, out
    return str(out["catalog_id"])


@pytest.fixture
async def ing(db_dsn: str, nats_url: str) -> AsyncIterator[Ingress]:
    async with (
        fake_auth0() as google,
        gateway_stack(
            db_dsn,
            nats_url,
            NOETL_ENCRYPTION_KEY=KEY,
            GATEWAY_INGRESS_GOOGLE_JWKS_URL=google.jwks_url,
            GATEWAY_INGRESS_MAX_BODY_BYTES="4096",
        ) as st,
    ):
        await register(st.api, LINEAR)
        await register(st.api, FANOUT)
        for name, data in (("orders_hook", {"secret": "topsecret"}), ("tokened_hook", {"token": "tok-9f"})):
            status, out = await st.api.post(
                "/api/credentials", json={"name": name, "type": "generic", "data": data}
            )
            assert status == 200, out
        for text in (ORDERS, TOKENED, PUSHED, MISSING_SECRET):
            await _subscribe(st, text)
        yield Ingress(st, google)


async def test_signed_webhook_starts_the_listeners_playbook(ing: Ingress) -> None:
    sub_id = await ing.st.api.deps.pool.fetchval("SELECT catalog_id FROM catalog WHERE path = 'subs/orders'")
    body = json.dumps({"order": 7, "message": "not mine"}).encode()
    status, out = await ing.post(
        "orders",
        body,
        **{
            "X-Signature": "sha256=" + sign(body),
            "Authorization": "Bearer leak",
            "X-Message-Id": "m-1",
            "X-Idem": "k1",
        },
    )
    assert status == 202, out
    assert out["status"] == "accepted" and isinstance(out["execution_id"], str)
    row = await ing.execution(out["execution_id"])
    assert row["path"] == "tests/linear" and row["parent_execution_id"] == sub_id
    wl = row["workload"] if isinstance(row["workload"], dict) else json.loads(row["workload"])
    assert wl["order"] == 7 and wl["subscription"] == "subs/orders" and wl["source"] == "webhook"
    assert wl["idempotency_key"] == "k1"
    message = wl["message"]
    assert message["id"] == "m-1" and message["data"] == {"order": 7, "message": "not mine"}
    assert "authorization" not in message["headers"] and "x-signature" not in message["headers"]
    _, metrics = await ing.st.get("/metrics")
    assert 'noetl_ingress_dispatched_total{subscription="orders"} 1.0' in metrics


async def test_allowlisted_route_directive_is_applied_and_audited(ing: Ingress) -> None:
    body = b'{"order": 8}'
    status, out = await ing.post("orders", body, **{"X-Signature": sign(body), "X-Route": "tests/fanout"})
    assert status == 202, out
    eid = int(out["execution_id"])
    assert (await ing.execution(out["execution_id"]))["path"] == "tests/fanout"

    async def audited() -> Any:
        return await ing.st.api.deps.pool.fetchval(
            "SELECT result FROM event WHERE execution_id = $1 AND event_type = 'subscription.message.directives_applied'",
            eid,
        )

    result = await eventually(audited, what="directives_applied event")
    context = (result if isinstance(result, dict) else json.loads(result))[
        "context"
    ]  # the server's event row
    assert context["route_override"]["playbook"] == "tests/fanout"
    # A value outside the allowlist changes nothing.
    status, out = await ing.post("orders", body, **{"X-Signature": sign(body), "X-Route": "admin/wipe"})
    assert status == 202 and (await ing.execution(out["execution_id"]))["path"] == "tests/linear"


async def test_rejections_forward_nothing(ing: Ingress) -> None:
    body = b'{"order": 9}'
    cases = [
        ("orders", body, {"X-Signature": sign(body, "wrong")}, 401, "bad_signature"),
        ("orders", body, {"X-Signature": sign(b'{"order": 10}')}, 401, "bad_signature"),
        ("orders", body, {}, 401, "missing_signature"),
        ("orders", b"x" * 5000, {"X-Signature": sign(b"x" * 5000)}, 413, "payload_too_large"),
        ("nobody", body, {"X-Signature": sign(body)}, 404, "unknown_listener"),
        ("broken", body, {"X-Signature": sign(body)}, 502, "config_error"),
        ("tokened", body, {"x-hook-token": "tok-9F"}, 401, "bad_token"),
        ("tokened", body, {"Authorization": "Bearer tok-9f"}, 401, "missing_token"),
    ]
    for listener, data, headers, want_status, reason in cases:
        status, out = await ing.post(listener, data, **headers)
        assert (status, out["reason"]) == (want_status, reason), (listener, out)
        assert out["status"] == "rejected"
        assert "topsecret" not in json.dumps(out)
    assert await ing.executions() == 0
    _, metrics = await ing.st.get("/metrics")
    assert 'noetl_ingress_rejected_total{reason="bad_signature",subscription="orders"} 2.0' in metrics
    assert 'noetl_ingress_rejected_total{reason="unknown_listener",subscription="_unknown"} 1.0' in metrics
    assert 'noetl_ingress_rejected_total{reason="config_error",subscription="_unknown"} 1.0' in metrics
    assert 'subscription="nobody"' not in metrics and 'subscription="broken"' not in metrics


async def test_bearer_listener_with_body_payload(ing: Ingress) -> None:
    status, out = await ing.post("tokened", b'{"a": 1}', **{"x-hook-token": "tok-9f"})
    assert status == 202, out
    wl = (await ing.execution(out["execution_id"]))["workload"]
    wl = wl if isinstance(wl, dict) else json.loads(wl)
    assert json.loads(wl["body"]) == {"a": 1} and "x-hook-token" not in wl["message"]["headers"]


def _push(data: bytes = b'{"ping": 1}') -> bytes:
    import base64

    msg = {"data": base64.b64encode(data).decode(), "messageId": "ps-9", "attributes": {"kind": "t"}}
    return json.dumps({"message": msg, "subscription": "projects/p/subscriptions/s"}).encode()


async def test_pubsub_oidc_verified_against_the_jwks(ing: Ingress) -> None:
    status, out = await ing.post("pushed", _push(), Authorization=ing.oidc())
    assert status == 202, out
    wl = (await ing.execution(out["execution_id"]))["workload"]
    wl = wl if isinstance(wl, dict) else json.loads(wl)
    assert wl["ping"] == 1 and wl["message"]["id"] == "ps-9" and wl["message"]["attributes"] == {"kind": "t"}
    before = await ing.executions()
    now = int(time.time())
    cases = [
        ({}, 401, "oidc_malformed"),
        ({"Authorization": "Bearer not-a-jwt"}, 401, "oidc_malformed"),
        ({"Authorization": ing.oidc(aud="https://elsewhere")}, 403, "oidc_wrong_audience"),
        ({"Authorization": ing.oidc(email="intruder@example.com")}, 403, "oidc_wrong_sa"),
        ({"Authorization": ing.oidc(email_verified=False)}, 403, "oidc_unverified_email"),
        ({"Authorization": ing.oidc(exp=now - 600, iat=now - 4000)}, 401, "oidc_expired"),
        ({"Authorization": ing.oidc(key=new_key())}, 401, "oidc_bad_signature"),
        ({"Authorization": ing.oidc(kid="rotated-away")}, 401, "oidc_unknown_kid"),
    ]
    for headers, want_status, reason in cases:
        status, out = await ing.post("pushed", _push(), **headers)
        assert (status, out["reason"]) == (want_status, reason), out
    assert await ing.executions() == before


async def test_ingress_disabled_without_internal_token(db_dsn: str, nats_url: str) -> None:
    async with gateway_stack(db_dsn, nats_url, NOETL_INTERNAL_API_TOKEN="") as st:
        status, out = await st.post("/ingress/orders", data=b"{}")
        assert status == 503 and out == "push-ingress not configured (NOETL_INTERNAL_API_TOKEN unset)"


async def test_server_listener_config_route_is_internal(ing: Ingress) -> None:
    api = ing.st.api
    status, _ = await api.get("/api/internal/ingress/orders")
    assert status == 403
    auth = {"Authorization": "Bearer internal-test-token"}
    status, cfg = await api.get("/api/internal/ingress/orders", headers=auth)
    assert status == 200, cfg
    assert cfg["verify"] == {"type": "hmac_sha256", "header": "x-signature", "secret": "topsecret"}
    assert cfg["dispatch"] == {"playbook": "tests/linear", "payload_from": "message.json"}
    assert cfg["catalog_path"] == "subs/orders" and cfg["source"] == "webhook"
    assert cfg["directives"]["directives"][0]["controls"] == "dispatch.playbook"
    status, _ = await api.get("/api/internal/ingress/orders-not", headers=auth)
    assert status == 404


async def test_ingress_is_rate_limited_per_client(db_dsn: str, nats_url: str) -> None:
    async with gateway_stack(db_dsn, nats_url, GATEWAY_INGRESS_RATE_LIMIT_PER_MINUTE="2") as st:
        for _ in range(2):
            status, out = await st.post("/ingress/nobody", data=b"{}")
            assert status == 404 and out["reason"] == "unknown_listener"
        status, _ = await st.post("/ingress/nobody", data=b"{}")
        assert status == 429
        _, metrics = await st.get("/metrics")
        assert 'noetl_gateway_rate_limited_total{route="ingress"} 1.0' in metrics
