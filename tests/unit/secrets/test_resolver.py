"""Resolution order, dynamic TTL, refresh, residency and audit through the resolver (§4.2, §12.4–12.5)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.errors import NotFound
from app.secrets.audit import AuditEvent, AuditSink
from app.secrets.envelope import EnvelopeCipher
from app.secrets.errors import AuditWriteFailed, CipherNotConfigured, ProviderFetchError, ResidencyViolation
from app.secrets.keys import LocalDevKms
from app.secrets.registry import ProviderRegistry, UnsupportedProvider
from app.secrets.resolver import (
    CacheHit,
    CacheWrite,
    CredentialRecord,
    SecretResolver,
    StartEvent,
    TemplateRenderError,
    parse_keychain,
)

from .helpers import FakeProvider, builder_for, metrics, sample, wait_until

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
MASTER = bytes(range(32))
SECRET = "s3cr3t-value-never-logged"

PLAYBOOK = """
apiVersion: noetl.io/v2
kind: Playbook
keychain:
  - name: db
    provider: vault
    map:
      password: "secret/db#password"
      user: "{{ db_path }}#user"
  - name: plain
    provider: vault
  - name: cred-entry
    kind: credential
    credential: "{{ cred_name }}"
  - name: empty-cred
    credential: "{{ missing_var }}"
  - name: nothing
  - name: eu-only
    provider: vault
    region: eu-central-1
    residency: strict
  - name: eu-advisory
    provider: vault
    region: eu-central-1
    residency: advisory
  - name: weird
    provider: nosuch
  - name: shadowed
    provider: vault
  - name: bad-template
    provider: vault
    map:
      k: "{{ 1 / }}"
"""


class Harness:
    def __init__(self, *, server_region: str = "us-east-1", strict_audit: bool = False) -> None:
        self.metrics, self.reg = metrics()
        self.cipher = EnvelopeCipher(LocalDevKms(MASTER))
        self.creds: dict[str, CredentialRecord] = {}
        self.starts: dict[int, StartEvent] = {
            7: StartEvent(100, {"db_path": "secret/db", "cred_name": "stored"})
        }
        self.catalogs: dict[int, str] = {100: PLAYBOOK}
        self.cache: dict[str, tuple[Any, datetime]] = {}
        self.writes: list[CacheWrite] = []
        self.catalog_reads = 0
        self.provider = FakeProvider(
            {
                "secret/db#password": SECRET,
                "secret/db#user": "admin",
                "plain": "p-val",
                "shadowed": "from-provider",
                "eu-only": "eu",
                "eu-advisory": "eu-adv",
            }
        )
        self.builds: list[tuple[str, str]] = []
        self.registry = ProviderRegistry(
            self.metrics, builders={"vault": builder_for(self.provider, self.builds)}
        )
        self.audit_rows: list[AuditEvent] = []
        self.audit_fail = False
        ids = iter(range(1, 10**6))
        self.audit = AuditSink(
            self._audit_write,
            self.metrics,
            lambda: next(ids),
            strict=strict_audit,
            server_region=server_region,
        )
        self.now = NOW
        self.resolver = SecretResolver(
            cipher=self.cipher,
            credential_lookup=self._cred,
            start_event_lookup=self._start,
            catalog_lookup=self._catalog,
            cache_get=self._cache_get,
            cache_put=self._cache_put,
            registry=self.registry,
            metrics=self.metrics,
            audit=self.audit,
            server_region=server_region,
            clock=lambda: self.now,
        )

    async def _audit_write(self, ev: AuditEvent) -> None:
        if self.audit_fail:
            raise RuntimeError("db down")
        self.audit_rows.append(ev)

    async def _cred(self, ident: str) -> CredentialRecord | None:
        return self.creds.get(ident)

    async def _start(self, execution_id: int) -> StartEvent | None:
        return self.starts.get(execution_id)

    async def _catalog(self, catalog_id: int) -> str | None:
        self.catalog_reads += 1
        return self.catalogs.get(catalog_id)

    async def _cache_get(self, key: str) -> CacheHit | None:
        row = self.cache.get(key)
        if row is None or row[1] < self.now:
            return None
        return CacheHit(row[0], row[1])

    async def _cache_put(self, w: CacheWrite) -> None:
        self.writes.append(w)
        self.cache[w.cache_key] = (w.data, w.expires_at)

    async def store(self, name: str, data: Any) -> None:
        self.creds[name] = CredentialRecord(1, name, "generic", await self.cipher.seal(data))

    def m(self, name: str, **labels: str) -> float:
        return sample(self.reg, name, **labels)


async def test_credential_store_shadows_keychain() -> None:  # case 45
    h = Harness()
    await h.store("shadowed", {"from": "store"})
    r = await h.resolver.resolve("shadowed", 7)
    assert r.source == "credential" and r.data == {"from": "store"} and r.kek_version == "v1"
    assert h.provider.calls == []


async def test_not_found_paths() -> None:  # case 46
    h = Harness()
    with pytest.raises(NotFound) as ei:
        await h.resolver.resolve("db", None)
    assert str(ei.value) == "Credential 'db' not found"
    with pytest.raises(NotFound):
        await h.resolver.resolve("db", 999)  # no start event
    with pytest.raises(NotFound):
        await h.resolver.resolve("absent", 7)
    with pytest.raises(NotFound):
        await h.resolver.resolve("nothing", 7)
    h.starts[8] = StartEvent(200, {})
    h.catalogs[200] = "keychain:\n  - name: x\n    provider: vault\n    residency: STRICT\n"
    with pytest.raises(NotFound):
        await h.resolver.resolve("x", 8)
    with pytest.raises(NotFound):
        await h.resolver.resolve("x", 8)
    assert h.catalog_reads == 2  # catalog 100 once, catalog 200 once (failure cached too)


async def test_credential_kind_entry() -> None:  # case 47
    h = Harness()
    await h.store("stored", {"password": SECRET})
    r = await h.resolver.resolve("cred-entry", 7)
    assert r.data == {"password": SECRET} and r.kek_version == "v1"
    assert h.writes == []  # not cached
    with pytest.raises(NotFound):
        await h.resolver.resolve("empty-cred", 7)


async def test_map_entry_sorted_and_earliest_expiry() -> None:  # case 48
    h = Harness()
    h.provider.expires = {
        "secret/db#password": NOW + timedelta(hours=2),
        "secret/db#user": NOW + timedelta(hours=1),
    }
    r = await h.resolver.resolve("db", 7)
    assert list(r.data) == ["password", "user"]
    assert r.data == {"password": SECRET, "user": "admin"}
    assert r.expires_at == NOW + timedelta(hours=1)
    assert [c.name for c in h.provider.calls] == ["secret/db#password", "secret/db#user"]
    assert all(c.region == "us-east-1" for c in h.provider.calls)
    assert h.m("noetl_secret_resolve_total", provider="vault", region="us-east-1", status="ok") == 1
    assert h.m("noetl_secret_resolve_duration_seconds_count", provider="vault", region="us-east-1") == 2
    assert h.m("noetl_secret_dynamic_ttl_seconds_count") == 1
    assert h.m("noetl_secret_dynamic_ttl_seconds_sum") == 3600


async def test_map_entry_one_failure_fails_all() -> None:
    h = Harness()
    h.provider.fail = {"secret/db#user"}
    with pytest.raises(ProviderFetchError):
        await h.resolver.resolve("db", 7)
    assert (
        h.m("noetl_secret_resolve_total", provider="vault", region="us-east-1", status="provider_fetch_error")
        == 1
    )
    assert h.m("noetl_secret_resolve_duration_seconds_count", provider="vault", region="us-east-1") == 2
    assert h.writes == []


async def test_mapless_entry_is_a_string_by_name() -> None:
    h = Harness()
    r = await h.resolver.resolve("plain", 7)
    assert r.data == "p-val"
    assert h.provider.calls[0].name == "plain"


async def test_unsupported_provider_and_template_error() -> None:  # case 49
    h = Harness()
    with pytest.raises(UnsupportedProvider) as ei:
        await h.resolver.resolve("weird", 7)
    assert ei.value.status == 500 and "supported: gcp, gcp_iam" in str(ei.value)
    with pytest.raises(TemplateRenderError):
        await h.resolver.resolve("bad-template", 7)
    assert (
        h.m("noetl_secret_resolve_total", provider="vault", region="us-east-1", status="template_error") == 1
    )


async def test_provider_build_error_metric() -> None:
    h = Harness()

    def broken(settings: object, region: str) -> FakeProvider:
        from app.secrets.errors import SecretConfigError

        raise SecretConfigError("vault: CA file '/x' is not readable")

    h.resolver.registry = ProviderRegistry(h.metrics, builders={"vault": broken})
    with pytest.raises(Exception, match="not readable"):
        await h.resolver.resolve("plain", 7)
    assert (
        h.m("noetl_secret_resolve_total", provider="vault", region="us-east-1", status="provider_build_error")
        == 1
    )


@pytest.mark.parametrize(
    ("issuer_expiry", "row_expiry"),
    [
        (timedelta(hours=2), timedelta(seconds=600)),
        (None, timedelta(seconds=600)),
        (timedelta(seconds=100), timedelta(seconds=40)),
    ],
)
async def test_cache_write_expiry(issuer_expiry: timedelta | None, row_expiry: timedelta) -> None:  # case 52
    h = Harness()
    if issuer_expiry is not None:
        h.provider.expires = {"plain": NOW + issuer_expiry}
    await h.resolver.resolve("plain", 7)
    assert len(h.writes) == 1
    w = h.writes[0]
    assert w.cache_key == "plain:100:7" and w.scope_type == "local" and w.execution_id == 7
    assert w.expires_at == NOW + row_expiry


async def test_cache_skip_inside_margin() -> None:
    h = Harness()
    h.provider.expires = {"plain": NOW + timedelta(seconds=30)}
    r = await h.resolver.resolve("plain", 7)
    assert r.data == "p-val"
    assert h.writes == []
    assert h.m("noetl_secret_cache_skip_total", reason="already_expired") == 1


async def test_cache_hit_served_without_provider() -> None:
    h = Harness()
    await h.resolver.resolve("plain", 7)
    r = await h.resolver.resolve("plain", 7)
    assert r.from_cache and r.data == "p-val"
    assert len(h.provider.calls) == 1


async def test_cache_read_error_is_a_miss() -> None:
    h = Harness()

    async def boom(key: str) -> CacheHit | None:
        raise RuntimeError("db down")

    h.resolver._cache_get = boom
    assert (await h.resolver.resolve("plain", 7)).data == "p-val"


async def test_stampede_collapse_and_release_after_failure() -> None:  # case 53
    h = Harness()
    h.cache["plain:100:7"] = ("old", NOW + timedelta(seconds=30))  # inside the 60 s window
    h.provider.gate = asyncio.Event()
    results = await asyncio.gather(*(h.resolver.resolve("plain", 7) for _ in range(5)))
    assert all(r.data == "old" and r.from_cache for r in results)  # callers never wait
    await wait_until(lambda: len(h.provider.calls) == 1)
    assert h.m("noetl_secret_refresh_total", outcome="triggered") == 5
    assert h.m("noetl_secret_refresh_total", outcome="stampede_collapsed") == 4
    h.provider.gate.set()
    await h.resolver.drain()
    assert h.m("noetl_secret_refresh_total", outcome="succeeded") == 1
    assert h.cache["plain:100:7"][0] == "p-val"
    assert h.m("noetl_secret_refresh_duration_seconds_count") == 1
    # A failing refresh releases the slot too.
    h.cache["plain:100:7"] = ("old", NOW + timedelta(seconds=30))
    h.provider.gate = None
    h.provider.fail = {"plain"}
    await h.resolver.resolve("plain", 7)
    await h.resolver.drain()
    assert h.m("noetl_secret_refresh_total", outcome="failed") == 1
    assert not h.resolver.is_refreshing(100, "plain")
    await h.resolver.resolve("plain", 7)
    await h.resolver.drain()
    assert h.m("noetl_secret_refresh_total", outcome="failed") == 2


async def test_no_refresh_outside_window() -> None:
    h = Harness()
    h.cache["plain:100:7"] = ("old", NOW + timedelta(seconds=500))
    await h.resolver.resolve("plain", 7)
    assert h.m("noetl_secret_refresh_total", outcome="triggered") == 0


async def test_strict_residency_blocks_before_anything() -> None:  # case 55
    h = Harness()
    with pytest.raises(ResidencyViolation) as ei:
        await h.resolver.resolve("eu-only", 7)
    assert str(ei.value) == (
        "Residency violation: credential 'eu-only' is region-locked to 'eu-central-1'; "
        "this server is in 'us-east-1'"
    )
    assert ei.value.status == 403 and ei.value.no_broker_fallback is False
    assert h.provider.calls == [] and h.builds == [] and len(h.registry) == 0
    assert h.m("noetl_secret_resolve_duration_seconds_count", provider="vault", region="eu-central-1") == 0
    assert h.m("noetl_secret_residency_check_total", policy="strict", decision="violation_blocked") == 1


async def test_residency_allowed_cases() -> None:  # case 56
    h = Harness()
    r = await h.resolver.resolve("eu-advisory", 7)
    assert r.data == "eu-adv"
    assert h.provider.calls[0].region == "eu-central-1"
    assert h.m("noetl_secret_residency_check_total", policy="advisory", decision="violation_allowed") == 1
    h2 = Harness(server_region="eu-central-1")
    assert (await h2.resolver.resolve("eu-only", 7)).data == "eu"
    assert h2.m("noetl_secret_residency_check_total", policy="strict", decision="allowed_same_region") == 1


async def test_cache_hits_are_gated() -> None:  # case 57
    h = Harness()
    h.cache["eu-only:100:7"] = ("cached-by-eu-server", NOW + timedelta(seconds=300))
    with pytest.raises(ResidencyViolation):
        await h.resolver.resolve("eu-only", 7)


async def test_no_broker_fallback_flag_carried() -> None:
    h = Harness()
    h.catalogs[100] = (
        PLAYBOOK + "  - name: locked\n    provider: vault\n    region: eu-central-1\n"
        "    residency: strict\n    no_broker_fallback: true\n"
    )
    with pytest.raises(ResidencyViolation) as ei:
        await h.resolver.resolve("locked", 7)
    assert ei.value.no_broker_fallback is True


async def test_audit_rows_async() -> None:  # case 61 (resolver half)
    h = Harness()
    await h.resolver.resolve("plain", 7, parent_execution_id=3)
    with pytest.raises(ResidencyViolation):
        await h.resolver.resolve("eu-only", 7)
    with pytest.raises(NotFound):
        await h.resolver.resolve("absent", 7)
    await h.audit.drain()
    rows = [(r.credential, r.operation, r.outcome, r.execution_id) for r in h.audit_rows]
    assert rows == [
        ("plain", "resolve_keychain", "ok", 7),
        ("eu-only", "resolve_keychain", "residency_violation", 7),
        ("absent", "resolve_keychain", "credential_not_found", 7),
    ]
    assert h.audit_rows[0].parent_execution_id == 3 and h.audit_rows[0].server_region == "us-east-1"
    for row in h.audit_rows:
        assert SECRET not in repr(row) and "p-val" not in str(row.to_dict())
    assert (
        h.m("noetl_secret_audit_writes_total", operation="resolve_keychain", outcome="ok", status="written")
        == 1
    )


async def test_audit_async_failure_still_returns_value() -> None:
    h = Harness()
    h.audit_fail = True
    assert (await h.resolver.resolve("plain", 7)).data == "p-val"
    await h.audit.drain()
    assert (
        h.m(
            "noetl_secret_audit_writes_total",
            operation="resolve_keychain",
            outcome="ok",
            status="dropped_async",
        )
        == 1
    )


async def test_audit_strict_failure_blocks() -> None:
    h = Harness(strict_audit=True)
    h.audit_fail = True
    with pytest.raises(AuditWriteFailed) as ei:
        await h.resolver.resolve("plain", 7)
    assert ei.value.status == 500
    assert (
        h.m(
            "noetl_secret_audit_writes_total",
            operation="resolve_keychain",
            outcome="ok",
            status="failed_strict",
        )
        == 1
    )
    h.audit_fail = False
    assert (await h.resolver.resolve("plain", 7)).data == "p-val"
    assert h.audit_rows[-1].outcome == "ok"  # written before the value was released


async def test_cipher_not_configured() -> None:
    h = Harness()
    h.resolver._cipher = None
    with pytest.raises(CipherNotConfigured) as ei:
        await h.resolver.resolve("plain", 7)
    assert str(ei.value) == "NOETL_ENCRYPTION_KEY is not configured" and ei.value.status == 500


def test_parse_keychain_fields() -> None:
    entries = parse_keychain(PLAYBOOK)
    db = entries[0]
    assert db.name == "db" and db.map == {"password": "secret/db#password", "user": "{{ db_path }}#user"}
    cred = entries[2]
    assert cred.extra == {"kind": "credential"} and cred.credential == "{{ cred_name }}"
    assert parse_keychain("keychain:\n  - name: a\n    region: ''\n")[0].region is None
    for bad in (
        "keychain:\n  - name: a\n    residency: Strict\n",
        "keychain:\n  - name: a\n    no_broker_fallback: 'yes'\n",
        "keychain:\n  - name: a\n    map: {k: 1}\n",
        "keychain: [\n",
    ):
        with pytest.raises(ValueError):
            parse_keychain(bad)


async def test_audit_kek_version_for_credential_entry() -> None:
    h = Harness()
    await h.store("stored", {"password": SECRET})
    await h.resolver.resolve("cred-entry", 7)
    await h.audit.drain()
    assert h.audit_rows[-1].kek_version == "v1" and h.audit_rows[-1].outcome == "ok"


async def test_strict_audit_failure_keeps_original_error() -> None:
    h = Harness(strict_audit=True)
    h.audit_fail = True
    with pytest.raises(ResidencyViolation):
        await h.resolver.resolve("eu-only", 7)
    assert (
        h.m(
            "noetl_secret_audit_writes_total",
            operation="resolve_keychain",
            outcome="residency_violation",
            status="failed_strict",
        )
        == 1
    )


async def test_cache_read_precedes_entry_kind() -> None:
    h = Harness()
    h.cache["nothing:100:7"] = ({"set": "via keychain API"}, NOW + timedelta(seconds=300))
    r = await h.resolver.resolve("nothing", 7)
    assert r.from_cache and r.data == {"set": "via keychain API"}


async def test_audit_outcomes_for_provider_and_template_failures() -> None:
    h = Harness()
    h.provider.fail = {"plain"}
    with pytest.raises(ProviderFetchError):
        await h.resolver.resolve("plain", 7)
    with pytest.raises(TemplateRenderError):
        await h.resolver.resolve("bad-template", 7)
    await h.audit.drain()
    assert [r.outcome for r in h.audit_rows] == ["provider_fetch_error", "template_error"]


def test_render_runtime_errors_are_template_errors() -> None:
    h = Harness()
    assert h.resolver.render("{{ a.b.c }}x", {}) == "x"
    assert h.resolver.render("{{ p }}#k", {"p": "secret/x"}) == "secret/x#k"
    for bad in ("{{ 1 / 0 }}", "{{ 1 / }}", "{{ x() }}"):
        with pytest.raises(TemplateRenderError):
            h.resolver.render(bad, {"x": 1})
