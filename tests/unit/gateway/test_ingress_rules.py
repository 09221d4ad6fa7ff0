"""Push-ingress verification, envelope, directives and workload rules (gateway.md §11.3–§11.5)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from app.gateway.ingress import Reject, verify_bearer, verify_hmac
from app.gateway.ingress_envelope import build_message, normalise_headers, resolve_directives, workload

VECTOR = "d3e1605d47ef7dcb51a1c506488393f329514f22326e7493a6cb12f377f289ab"
HMAC = {"type": "hmac_sha256", "header": "x-signature", "secret": "topsecret"}


def _reason(fn: Any, *args: Any) -> tuple[int, str] | None:
    try:
        fn(*args)
    except Reject as exc:
        return exc.status, exc.reason
    return None


@pytest.mark.parametrize(
    ("verify", "headers", "body", "expected"),
    [
        (HMAC, {"x-signature": VECTOR}, b'{"event":"x"}', None),
        (HMAC, {"x-signature": "sha256=" + VECTOR}, b'{"event":"x"}', None),
        (HMAC, {"x-signature": "SHA256=" + VECTOR.upper()}, b'{"event":"x"}', None),
        (HMAC, {"x-signature": VECTOR}, b'{"event": "x"}', (401, "bad_signature")),  # raw bytes, not JSON
        (HMAC, {"x-signature": VECTOR[:-2]}, b'{"event":"x"}', (401, "bad_signature")),
        (HMAC, {"x-signature": "é" * 64}, b'{"event":"x"}', (401, "bad_signature")),
        (HMAC, {}, b'{"event":"x"}', (401, "missing_signature")),
        (HMAC, {"x-signature": "  "}, b"{}", (401, "missing_signature")),
        ({**HMAC, "secret": ""}, {"x-signature": VECTOR}, b'{"event":"x"}', (403, "misconfigured")),
        ({"type": "hmac_sha256", "secret": "topsecret"}, {"x-signature": VECTOR}, b'{"event":"x"}', None),
        (
            {"type": "hmac_sha256", "secret": "topsecret"},
            {"x-hub": VECTOR},
            b'{"event":"x"}',
            (401, "missing_signature"),
        ),
    ],
)
def test_hmac(verify: dict[str, Any], headers: dict[str, str], body: bytes, expected: Any) -> None:
    assert _reason(verify_hmac, verify, headers, body) == expected


BEARER = {"type": "bearer", "secret": "s3cret-token"}


@pytest.mark.parametrize(
    ("verify", "headers", "expected"),
    [
        (BEARER, {"authorization": "Bearer s3cret-token"}, None),
        (BEARER, {"authorization": "bearer  s3cret-token "}, None),
        (BEARER, {"authorization": "s3cret-token"}, None),
        (BEARER, {"authorization": "Bearer s3cret-tokeN"}, (401, "bad_token")),
        (BEARER, {"authorization": "Bearer s3cret-token-longer"}, (401, "bad_token")),
        (BEARER, {}, (401, "missing_token")),
        (BEARER, {"authorization": "Bearer "}, (401, "missing_token")),
        ({**BEARER, "header": "x-token"}, {"x-token": "s3cret-token"}, None),
        ({**BEARER, "header": "x-token"}, {"authorization": "Bearer s3cret-token"}, (401, "missing_token")),
        ({"type": "bearer"}, {"authorization": "Bearer x"}, (403, "misconfigured")),
    ],
)
def test_bearer(verify: dict[str, Any], headers: dict[str, str], expected: Any) -> None:
    assert _reason(verify_bearer, verify, headers) == expected


def test_headers_normalised_and_auth_stripped() -> None:
    raw = [
        ("X-Tag", "a"),
        ("x-tag", "b"),
        ("Authorization", "Bearer t"),
        ("Cookie", "session_token=x"),
        ("Proxy-Authorization", "p"),
        ("X-Signature", "abc"),
        ("X-Bin", "caf\u00e9"),
        ("X-Message-Id", "m-1"),
    ]
    headers = normalise_headers(raw)
    assert headers["x-tag"] == ["a", "b"] and "x-bin" not in headers
    msg = build_message("webhook", b'{"k": 1}', headers, "x-signature")
    env = msg.envelope
    assert env["id"] == "m-1" and env["data"] == {"k": 1}
    assert set(env["headers"]) == {"x-tag", "x-message-id"}
    assert env["metadata"] == {"source": "webhook", "mode": "push"}


@pytest.mark.parametrize(
    ("body", "data"),
    [(b"", None), (b"plain text", "plain text"), (b"\xff\xfe", "\ufffd\ufffd"), (b"[1,2]", [1, 2])],
)
def test_webhook_data(body: bytes, data: Any) -> None:
    msg = build_message("webhook", body, {}, None)
    assert msg.envelope["data"] == data
    assert len(msg.message_id) == 36  # a fresh UUID without x-message-id


def test_pubsub_envelope() -> None:
    push = {
        "message": {
            "data": base64.b64encode(b'{"order": 7}').decode(),
            "messageId": "ps-1",
            "attributes": {"Priority": "high"},
        },
        "subscription": "projects/p/subscriptions/s",
    }
    msg = build_message("pubsub", json.dumps(push).encode(), {"authorization": "Bearer x"}, None)
    assert msg.envelope["id"] == "ps-1" and msg.envelope["data"] == {"order": 7}
    assert msg.envelope["headers"] == {"priority": "high"}
    assert msg.envelope["attributes"] == {"Priority": "high"}
    assert msg.channel == {"priority": "high"}
    bad = build_message("pubsub", json.dumps({"message": {"data": "%%%"}}).encode(), {}, None)
    assert bad.envelope["data"] == "%%%"
    # A pubsub body that is not a push envelope is handled like a webhook.
    plain = build_message("pubsub", b'{"x": 1}', {}, None)
    assert plain.envelope["data"] == {"x": 1} and plain.envelope["metadata"]["source"] == "pubsub"


BLOCK = {
    "directives": [
        {"header": "x-priority", "controls": "priority", "map": {"high": "fast", "low": "slow"}},
        {"header": "X-Pool", "controls": "dispatch.execution_pool", "allowed": ["gpu"]},
        {"header": "x-route", "controls": "dispatch.playbook", "allowed": ["tests/other"]},
        {"header": "x-idem", "controls": "idempotency_key"},
    ],
    "trace": {"propagate": "w3c", "baggage_allowlist": ["tenant"]},
}
PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_directives_allowlist_and_precedence() -> None:
    channel = {
        "x-priority": "high",
        "x-pool": ["cpu", "gpu"],  # multi-valued: the last value acts
        "x-route": "evil/playbook",  # not allowlisted: ignored
        "x-idem": "k-1",
        "traceparent": PARENT,
        "baggage": "tenant=a, secret=b",
    }
    d = resolve_directives(BLOCK, channel)
    assert d.pool == "gpu"  # explicit pool beats the priority map declared before it
    assert d.playbook is None and d.free == {"idempotency_key": "k-1"}
    assert d.trace == {"traceparent": PARENT, "baggage": "tenant=a"}
    assert {"header": "x-pool", "controls": "dispatch.execution_pool", "effective_value": "gpu"} in d.applied
    only_priority = resolve_directives(BLOCK, {"x-priority": "low", "traceparent": "bogus"})
    assert only_priority.pool == "slow" and only_priority.trace is None


@pytest.mark.parametrize(
    "block",
    [
        "nope",
        {"directives": [{"header": "x", "controls": "dispatch.playbook"}]},  # routing without allowed
        {"directives": [{"header": "x", "controls": "priority", "map": {}}]},
        {"directives": [{"header": "x", "controls": "launch_missiles"}]},
    ],
)
def test_invalid_block_ignored(block: Any) -> None:
    d = resolve_directives(block, {"x": "v"})
    assert d.applied == [] and d.pool is None and d.playbook is None


def _cfg(payload_from: str) -> dict[str, Any]:
    return {"catalog_path": "subs/orders", "source": "webhook", "dispatch": {"payload_from": payload_from}}


def test_workload_payload_from() -> None:
    msg = build_message("webhook", b'{"order": 1, "message": "mine", "source": "x"}', {}, None)
    d = resolve_directives(BLOCK, {"x-idem": "k"})
    out = workload(_cfg("message.json"), msg, d)
    assert out["order"] == 1 and out["message"] is msg.envelope and out["source"] == "webhook"
    assert out["subscription"] == "subs/orders" and out["idempotency_key"] == "k"
    as_body = workload(_cfg("message.body"), msg, d)
    assert json.loads(as_body["body"])["order"] == 1
    listed = workload(_cfg("message.json"), build_message("webhook", b"[1]", {}, None), d)
    assert listed["body"] == [1]
