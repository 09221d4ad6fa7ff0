"""Secrets wallet micro-benchmarks: cached keychain resolve and seal + unseal throughput.

Run: .venv/bin/python bench/secrets_bench.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from prometheus_client import CollectorRegistry

from app.secrets import sealed
from app.secrets.audit import AuditEvent, AuditSink
from app.secrets.envelope import EnvelopeCipher
from app.secrets.keys import LocalDevKms
from app.secrets.metrics import SecretsMetrics
from app.secrets.registry import ProviderRegistry
from app.secrets.resolver import CacheHit, CacheWrite, CredentialRecord, SecretResolver, StartEvent

PLAYBOOK = """
keychain:
  - name: api
    provider: vault
    region: us-east-1
    residency: strict
    map:
      token: "secret/api#token"
"""
PLAINTEXT = (
    b'{"id":"1234567890","name":"duffel-token","type":"bearer","data":{"token":"sk-test-AbCdEf123"},'
    b'"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}'
)


async def bench_cached_resolve(seconds: float) -> float:
    """Keychain resolutions served from the cache (residency gate + async audit included)."""
    metrics = SecretsMetrics(CollectorRegistry())
    expires = datetime.now(UTC) + timedelta(hours=1)
    hit = CacheHit({"token": "t0k"}, expires)

    async def cred(_: str) -> CredentialRecord | None:
        return None

    async def start(_: int) -> StartEvent:
        return StartEvent(100, {})

    async def catalog(_: int) -> str:
        return PLAYBOOK

    async def cache_get(_: str) -> CacheHit:
        return hit

    async def cache_put(_: CacheWrite) -> None:
        return None

    async def audit_write(_: AuditEvent) -> None:
        return None

    ids = iter(range(1, 1 << 62))
    resolver = SecretResolver(
        cipher=EnvelopeCipher(LocalDevKms(bytes(32))),
        credential_lookup=cred,
        start_event_lookup=start,
        catalog_lookup=catalog,
        cache_get=cache_get,
        cache_put=cache_put,
        registry=ProviderRegistry(metrics, builders={}),
        metrics=metrics,
        audit=AuditSink(audit_write, metrics, lambda: next(ids), server_region="us-east-1"),
        server_region="us-east-1",
    )
    audit = resolver._audit
    assert audit is not None
    n = 0
    deadline = time.perf_counter() + seconds
    began = time.perf_counter()
    while time.perf_counter() < deadline:
        for _ in range(500):
            r = await resolver.resolve("api", 7)
            assert r.from_cache
        n += 500
        await audit.drain()
    elapsed = time.perf_counter() - began
    return n / elapsed


def bench_seal_unseal(seconds: float) -> float:
    """Seal a 166-byte credential to a worker key and open it again."""
    sk = X25519PrivateKey.generate()
    pub = sealed.public_key_bytes(sk)
    n = 0
    deadline = time.perf_counter() + seconds
    began = time.perf_counter()
    while time.perf_counter() < deadline:
        for _ in range(200):
            env = sealed.seal(pub, PLAINTEXT)
            assert sealed.open_sealed(sk, env.to_json()) == PLAINTEXT
        n += 200
    return n / (time.perf_counter() - began)


def bench_sealed_delivery(seconds: float) -> float:
    """The whole sealed path per request: validate the registered worker key, seal, serialize, worker opens."""
    sk = X25519PrivateKey.generate()
    registered = base64.b64encode(sealed.public_key_bytes(sk)).decode("ascii")
    n = 0
    deadline = time.perf_counter() + seconds
    began = time.perf_counter()
    while time.perf_counter() < deadline:
        for _ in range(200):
            pub = sealed.decode_worker_pubkey("bench-worker", registered)
            wire = sealed.seal(pub, PLAINTEXT).to_json()
            assert sealed.open_sealed(sk, json.loads(wire)) == PLAINTEXT
        n += 200
    return n / (time.perf_counter() - began)


async def bench_envelope(seconds: float) -> tuple[float, float]:
    """Envelope v1 seal and open (local KEK) per second."""
    cipher = EnvelopeCipher(LocalDevKms(bytes(32)))
    data: dict[str, Any] = {"host": "db.example.com", "password": "secret123", "username": "admin"}
    stored = await cipher.seal(data)
    out = []
    for fn in (lambda: cipher.seal(data), lambda: cipher.open(stored)):
        n = 0
        began = time.perf_counter()
        while time.perf_counter() - began < seconds / 2:
            for _ in range(200):
                await fn()
            n += 200
        out.append(n / (time.perf_counter() - began))
    return out[0], out[1]


def main() -> None:
    """Run every benchmark and print one line per figure."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    resolve = asyncio.run(bench_cached_resolve(args.seconds))
    seal = bench_seal_unseal(args.seconds)
    delivery = bench_sealed_delivery(args.seconds)
    env_seal, env_open = asyncio.run(bench_envelope(args.seconds))
    ok_r = "OK" if resolve >= 20000 else "LOW"
    ok_s = "OK" if seal >= 5000 else "LOW"
    print(f"cached keychain resolve: {resolve:,.0f}/s (target >= 20,000/s) {ok_r}")
    print(f"seal + unseal:           {seal:,.0f}/s (target >= 5,000/s) {ok_s}")
    print(f"sealed delivery path:    {delivery:,.0f}/s (worker key check + seal + JSON + open)")
    print(f"envelope v1 seal:        {env_seal:,.0f}/s")
    print(f"envelope v1 open:        {env_open:,.0f}/s")


if __name__ == "__main__":
    main()
