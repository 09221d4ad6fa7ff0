"""Broker client, audit sink and rotation pass (secrets.md §1.7, §6.2, §6.3, §12.2, §12.5)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from aiohttp import web

from app.errors import BadRequest, Forbidden
from app.secrets.audit import AuditEvent, AuditSink
from app.secrets.broker import BrokerClient, BrokerRequest, broker_check_request, parse_broker_registry
from app.secrets.encoding import b64encode
from app.secrets.envelope import EnvelopeCipher
from app.secrets.errors import AuditWriteFailed, BrokerDenied, BrokerUnreachable, ResidencyViolation
from app.secrets.keys import LocalDevKms
from app.secrets.rotation import clamp, rotate_table

from .helpers import metrics, sample

WORKER_PUB = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
ENVELOPE = {"alg": "x25519-hkdf-sha256-chacha20-poly1305", "v": 1, "eph_pub": "e", "ciphertext": "c"}


def test_registry_parsing() -> None:
    assert parse_broker_registry('{"eu-central-1": "https://b.example.com", "x": ""}') == {
        "eu-central-1": "https://b.example.com"
    }
    assert parse_broker_registry("") == {}
    assert parse_broker_registry("not json") == {}
    assert parse_broker_registry('{"a": 1}') == {}
    assert parse_broker_registry("[]") == {}


def test_request_field_order() -> None:
    req = BrokerRequest("db", "AAAA", "w1", None, 5, "eu-central-1", "us-east-1")
    assert req.to_json() == (
        '{"alias":"db","worker_public_key_b64":"AAAA","worker_id":"w1","execution_id":null,'
        '"parent_execution_id":5,"expected_entry_region":"eu-central-1","requesting_region":"us-east-1"}'
    )


def _violation(no_fallback: bool = False) -> ResidencyViolation:
    return ResidencyViolation("db", "eu-central-1", "us-east-1", no_broker_fallback=no_fallback)


async def _client(serve, status: int, body: str):  # type: ignore[no-untyped-def]
    async def h(req: web.Request) -> web.Response:
        return web.Response(status=status, text=body, content_type="application/json")

    srv = await serve(h)
    m, reg = metrics()
    return srv, BrokerClient({"eu-central-1": srv.url + "/"}, "broker-tok", m), reg


async def test_forward_success(serve) -> None:  # case 58
    srv, client, reg = await _client(serve, 200, json.dumps(ENVELOPE))
    env = await client.forward(
        _violation(),
        alias="db",
        worker_public_key=WORKER_PUB,
        worker_id="w1",
        execution_id=7,
        parent_execution_id=None,
        requesting_region="us-east-1",
    )
    assert json.loads(env) == ENVELOPE
    seen = srv.requests[0]
    assert seen.path == "/api/internal/cross-region/resolve"
    assert seen.headers["Authorization"] == "Bearer broker-tok"
    assert list(json.loads(seen.body)) == [
        "alias",
        "worker_public_key_b64",
        "worker_id",
        "execution_id",
        "parent_execution_id",
        "expected_entry_region",
        "requesting_region",
    ]
    assert json.loads(seen.body)["worker_public_key_b64"] == b64encode(WORKER_PUB)
    assert sample(reg, "noetl_secret_broker_call_total", broker_region="eu-central-1", outcome="ok") == 1
    assert sample(reg, "noetl_secret_broker_call_duration_seconds_count", broker_region="eu-central-1") == 1
    await client.close()


async def test_forward_broker_500(serve) -> None:
    srv, client, reg = await _client(serve, 500, "boom")
    with pytest.raises(BrokerUnreachable) as ei:
        await client.forward(
            _violation(),
            alias="db",
            worker_public_key=WORKER_PUB,
            worker_id="w1",
            execution_id=7,
            parent_execution_id=None,
            requesting_region="us-east-1",
        )
    assert str(ei.value) == (
        f"Cross-region broker {srv.url}/ unreachable: broker returned HTTP 500 Internal Server Error: boom"
    )
    assert ei.value.status == 502
    assert (
        sample(reg, "noetl_secret_broker_call_total", broker_region="eu-central-1", outcome="unreachable")
        == 1
    )
    assert sample(reg, "noetl_secret_broker_call_duration_seconds_count", broker_region="eu-central-1") == 1
    await client.close()


async def test_forward_broker_403(serve) -> None:
    body = json.dumps(
        {"detail": None, "error": "cross-region broker: this server is in region 'x'", "status": 403}
    )
    _, client, reg = await _client(serve, 403, body)
    with pytest.raises(BrokerDenied) as ei:
        await client.forward(
            _violation(),
            alias="db",
            worker_public_key=WORKER_PUB,
            worker_id="w1",
            execution_id=7,
            parent_execution_id=None,
            requesting_region="us-east-1",
        )
    assert ei.value.status == 403 and str(ei.value) == "cross-region broker: this server is in region 'x'"
    assert (
        sample(
            reg, "noetl_secret_broker_call_total", broker_region="eu-central-1", outcome="denied_by_broker"
        )
        == 1
    )
    await client.close()


async def test_forward_undecodable_and_transport(serve) -> None:
    _, client, _ = await _client(serve, 200, "<html>")
    with pytest.raises(BrokerUnreachable, match="undecodable"):
        await client.forward(
            _violation(),
            alias="db",
            worker_public_key=WORKER_PUB,
            worker_id="w1",
            execution_id=None,
            parent_execution_id=None,
            requesting_region="us-east-1",
        )
    await client.close()
    m, _ = metrics()
    dead = BrokerClient({"eu-central-1": "http://127.0.0.1:9"}, "t", m, timeout_secs=2)
    with pytest.raises(BrokerUnreachable, match=r"^Cross-region broker http://127.0.0.1:9 unreachable: "):
        await dead.forward(
            _violation(),
            alias="db",
            worker_public_key=WORKER_PUB,
            worker_id="w1",
            execution_id=None,
            parent_execution_id=None,
            requesting_region="us-east-1",
        )
    await dead.close()


async def test_no_broker_fallback_and_no_registry(serve) -> None:  # case 59 + invalid registry
    srv, client, _ = await _client(serve, 200, json.dumps(ENVELOPE))
    v = _violation(no_fallback=True)
    with pytest.raises(ResidencyViolation) as ei:
        await client.forward(
            v,
            alias="db",
            worker_public_key=WORKER_PUB,
            worker_id="w1",
            execution_id=7,
            parent_execution_id=None,
            requesting_region="us-east-1",
        )
    assert ei.value is v and srv.requests == []
    m, _ = metrics()
    empty = BrokerClient(parse_broker_registry("{bad"), "t", m)
    with pytest.raises(ResidencyViolation):
        await empty.forward(
            _violation(),
            alias="db",
            worker_public_key=WORKER_PUB,
            worker_id="w1",
            execution_id=7,
            parent_execution_id=None,
            requesting_region="us-east-1",
        )
    await client.close()


def test_broker_endpoint_checks() -> None:  # case 60 (library half)
    m, reg = metrics()
    with pytest.raises(Forbidden) as ei:
        broker_check_request("eu-west-1", "eu-central-1", b64encode(WORKER_PUB), m)
    assert str(ei.value) == (
        "cross-region broker: this server is in region 'eu-central-1', not 'eu-west-1' "
        "as the requesting peer expected"
    )
    assert (
        sample(reg, "noetl_secret_broker_call_total", broker_region="eu-west-1", outcome="wrong_region") == 1
    )
    assert broker_check_request("", "", " " + b64encode(WORKER_PUB) + " ", m) == WORKER_PUB
    with pytest.raises(BadRequest, match="expected 32 bytes, got 31"):
        broker_check_request("eu-central-1", "eu-central-1", b64encode(bytes(31)), m)
    assert (
        sample(reg, "noetl_secret_broker_call_total", broker_region="eu-central-1", outcome="bad_pubkey") == 1
    )


# ------------------------------------------------------------------ audit


def _sink(strict: bool, fail: bool, rows: list[AuditEvent]):  # type: ignore[no-untyped-def]
    m, reg = metrics()

    async def write(ev: AuditEvent) -> None:
        if fail:
            raise RuntimeError("insert failed")
        rows.append(ev)

    clock = lambda: datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=UTC)  # noqa: E731
    return AuditSink(write, m, lambda: 42, strict=strict, server_region="us-east-1", clock=clock), reg


async def test_audit_event_shape() -> None:
    rows: list[AuditEvent] = []
    sink, reg = _sink(False, False, rows)
    ev = sink.event("db", "get_sealed", "ok", worker_id="w1", execution_id=7, kek_version="v1")
    assert list(ev.to_dict()) == [
        "audit_id",
        "occurred_at",
        "credential",
        "operation",
        "outcome",
        "worker_id",
        "execution_id",
        "parent_execution_id",
        "server_region",
        "broker_region",
        "kek_version",
        "notes",
    ]
    assert ev.to_dict()["occurred_at"] == "2026-01-02T03:04:05.120Z"
    assert ev.to_dict()["server_region"] == "us-east-1" and ev.to_dict()["broker_region"] is None
    await sink.record(ev)
    await sink.drain()
    assert rows == [ev]
    assert (
        sample(reg, "noetl_secret_audit_writes_total", operation="get_sealed", outcome="ok", status="written")
        == 1
    )


async def test_audit_async_drop_and_strict_fail() -> None:
    rows: list[AuditEvent] = []
    sink, reg = _sink(False, True, rows)
    await sink.record(sink.event("db", "get_credential", "ok"))  # does not raise
    await sink.drain()
    assert (
        sample(
            reg,
            "noetl_secret_audit_writes_total",
            operation="get_credential",
            outcome="ok",
            status="dropped_async",
        )
        == 1
    )
    strict, reg2 = _sink(True, True, rows)
    with pytest.raises(AuditWriteFailed):
        await strict.record(strict.event("db", "get_sealed", "no_pubkey"))
    assert (
        sample(
            reg2,
            "noetl_secret_audit_writes_total",
            operation="get_sealed",
            outcome="no_pubkey",
            status="failed_strict",
        )
        == 1
    )


# ------------------------------------------------------------------ rotation


MASTER = bytes(range(32))


class Table:
    def __init__(self, rows: dict) -> None:  # type: ignore[type-arg]
        self.rows = rows
        self.fetches = 0
        self.race_pk: object = None

    async def fetch(self, after, limit):  # type: ignore[no-untyped-def]
        self.fetches += 1
        keys = sorted(k for k in self.rows if k > after)[:limit]
        return [(k, self.rows[k]) for k in keys]

    async def update(self, pk, old, new):  # type: ignore[no-untyped-def]
        if pk == self.race_pk:
            self.rows[pk] = "changed-meanwhile"
        if self.rows.get(pk) != old:
            return 0
        self.rows[pk] = new
        return 1


def _with_kv(raw: str, kv: str) -> str:
    d = json.loads(raw)
    d["dek"]["kv"] = kv
    return json.dumps(d, separators=(",", ":"))


async def test_rotation_credential_batches() -> None:  # case 31 (library half)
    cipher = EnvelopeCipher(LocalDevKms(MASTER))
    sealed_v1 = await cipher.seal({"a": 1})
    rows = {i: sealed_v1 for i in range(1, 251)}
    rows[5] = "not an envelope"
    rows[6] = _with_kv(sealed_v1, "v9")
    t = Table(rows)
    m, reg = metrics()
    stats = await rotate_table("credential", cipher, t.fetch, t.update, m, after=0, batch_size=100)
    assert t.fetches == 3 and stats.last == 250
    assert (stats.processed, stats.rewrapped, stats.skipped, stats.failed) == (250, 1, 248, 1)
    assert sample(reg, "noetl_wallet_rotate_total", table="credential", status="parse_error") == 1
    assert json.loads(t.rows[6])["dek"]["kv"] == "v1"
    assert await cipher.open(t.rows[6]) == {"a": 1}


async def test_rotation_keychain_v9_and_race() -> None:
    cipher = EnvelopeCipher(LocalDevKms(MASTER))
    v9 = _with_kv(await cipher.seal({"t": "x"}), "v9")
    t = Table({"a:1:1": v9, "b:1:1": v9, "c:1:1": v9})
    t.race_pk = "b:1:1"
    m, reg = metrics()
    stats = await rotate_table("keychain", cipher, t.fetch, t.update, m, after="", batch_size=clamp(0, 100))
    assert stats.last == "c:1:1" and stats.processed == 3
    assert (stats.rewrapped, stats.skipped) == (2, 1)
    assert t.rows["b:1:1"] == "changed-meanwhile"  # the concurrent write is intact
    assert sample(reg, "noetl_wallet_rotate_total", table="keychain", status="rewrapped") == 2


async def test_rotation_write_failure_and_max_batches() -> None:
    cipher = EnvelopeCipher(LocalDevKms(MASTER))
    v9 = _with_kv(await cipher.seal({}), "v9")
    t = Table({i: v9 for i in range(1, 11)})

    async def failing(pk, old, new):  # type: ignore[no-untyped-def]
        raise RuntimeError("db")

    m, reg = metrics()
    stats = await rotate_table(
        "credential", cipher, t.fetch, failing, m, after=0, batch_size=2, max_batches=2
    )
    assert stats.processed == 4 and stats.failed == 4 and stats.last == 4
    assert sample(reg, "noetl_wallet_rotate_total", table="credential", status="failed_write") == 4
    assert clamp(None, 100) == 100 and clamp(-3, 100) == 1
