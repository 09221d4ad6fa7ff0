"""Cache decisions, residency table, provider registry (secrets.md §4.3, §4.4, §6.1, §12.4–12.5)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.config.secrets import SecretsSettings
from app.secrets import cache
from app.secrets.errors import ResidencyViolation, SecretConfigError
from app.secrets.registry import ProviderRegistry, UnsupportedProvider, implementation_id
from app.secrets.residency import Residency, check_residency, decide, effective_region

from .helpers import FakeProvider, builder_for, metrics, sample


@pytest.mark.parametrize(
    ("now", "expires_at", "margin", "decision"),
    [
        (1000, None, 60, cache.CacheFor(600)),
        (1000, 10000, 60, cache.CacheFor(600)),
        (1000, 1300, 60, cache.CacheFor(240)),
        (1000, 900, 60, cache.SkipCacheAlreadyExpired()),
        (1000, 1030, 60, cache.SkipCacheAlreadyExpired()),
        (1000, 1070, 60, cache.CacheFor(10)),
        (1000, 1062, 60, cache.CacheFor(5)),
        (1000, 1000, 0, cache.SkipCacheAlreadyExpired()),
        (1000, 1060.5, 60, cache.CacheFor(5)),  # 0.5 s remaining after the margin → floor
    ],
)
def test_cache_decision_table(now: float, expires_at: float | None, margin: float, decision: object) -> None:
    assert cache.effective_cache_ttl(expires_at, 600, now, margin) == decision  # §12.4 case 50


def test_cache_decision_datetimes() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert cache.effective_cache_ttl(datetime(2026, 1, 1, 0, 5, tzinfo=UTC), 600, now, 60) == cache.CacheFor(
        240
    )


@pytest.mark.parametrize(
    ("expires_at", "expected"),
    [(None, False), (900, False), (2000, False), (1030, True), (1060, True), (1061, False)],
)
def test_should_refresh(expires_at: float | None, expected: bool) -> None:  # case 51
    assert cache.should_refresh(expires_at, 60, 1000) is expected


@pytest.mark.parametrize(
    ("scope", "execution_id", "key"),
    [
        ("local", 7, "tok:42:7"),
        ("local", None, "tok:42:local"),
        ("shared", 7, "tok:42:shared:7"),
        ("shared", None, "tok:42:shared"),
        ("global", 7, "tok:42:global"),
        ("global", None, "tok:42:global"),
    ],
)
def test_cache_key_table(scope: str, execution_id: int | None, key: str) -> None:  # case 43 (library half)
    assert cache.keychain_cache_key("tok", 42, scope, execution_id) == key


def test_cache_key_bad_scope() -> None:
    with pytest.raises(ValueError, match="weird"):
        cache.keychain_cache_key("tok", 42, "weird", None)


def test_inflight_slots() -> None:
    s = cache.InflightSlots()
    assert s.claim((1, "a"))
    assert not s.claim((1, "a"))
    assert s.claim((2, "a"))
    s.release((1, "a"))
    assert s.claim((1, "a"))


# ------------------------------------------------------------------ residency


@pytest.mark.parametrize(
    ("policy", "entry", "server", "allowed", "decision"),
    [
        (Residency.STRICT, "", "us-east-1", [], "allowed_no_policy"),
        (Residency.NONE, "eu-central-1", "us-east-1", [], "allowed_no_policy"),
        (Residency.STRICT, "eu-central-1", "eu-central-1", [], "allowed_same_region"),
        (Residency.ADVISORY, "eu-central-1", "eu-central-1", [], "allowed_same_region"),
        (Residency.STRICT, "eu-central-1", "us-east-1", ["us-east-1"], "allowed_in_allowlist"),
        (Residency.STRICT, "eu-central-1", "us-east-1", [], "violation_blocked"),
        (Residency.ADVISORY, "eu-central-1", "us-east-1", [], "violation_allowed"),
        (Residency.STRICT, "eu-central-1", "", [""], "violation_blocked"),
        (Residency.ADVISORY, "eu-central-1", "", [""], "violation_allowed"),
    ],
)
def test_residency_table(
    policy: Residency, entry: str, server: str, allowed: list[str], decision: str
) -> None:
    assert decide(policy, entry, server, allowed) == decision


def test_residency_denial_message_and_metric() -> None:  # §12.5 case 55/56 (gate half)
    m, reg = metrics()
    with pytest.raises(ResidencyViolation) as ei:
        check_residency("db-creds", Residency.STRICT, "eu-central-1", "us-east-1", [], m)
    assert str(ei.value) == (
        "Residency violation: credential 'db-creds' is region-locked to 'eu-central-1'; "
        "this server is in 'us-east-1'"
    )
    assert ei.value.status == 403
    assert (
        sample(reg, "noetl_secret_residency_check_total", policy="strict", decision="violation_blocked") == 1
    )
    check_residency("x", Residency.STRICT, "", "us-east-1", [], m)
    assert (
        sample(reg, "noetl_secret_residency_check_total", policy="strict", decision="allowed_no_policy") == 1
    )
    total = sum(
        s.value
        for metric in reg.collect()
        if metric.name == "noetl_secret_residency_check"
        for s in metric.samples
        if s.name.endswith("_total")
    )
    assert total == 2  # exactly one increment per evaluation


def test_effective_region() -> None:
    assert effective_region("eu", "us") == "eu"
    assert effective_region("", "us") == "us"
    assert effective_region(None, "") == ""


# ------------------------------------------------------------------ registry


def test_implementation_ids() -> None:
    assert implementation_id("kubernetes") == "k8s"
    assert implementation_id("aws_sm") == "aws"
    assert implementation_id("azure_aad") == "azure_oauth"
    with pytest.raises(UnsupportedProvider) as ei:
        implementation_id("GCP")
    assert str(ei.value) == (
        "unsupported keychain secret provider 'GCP' "
        "(supported: gcp, gcp_iam, k8s, vault, aws, aws_sts, azure, azure_oauth)"
    )
    assert ei.value.status == 500


async def test_registry_builds_once_per_region_and_ttl() -> None:  # case 54
    m, reg = metrics()
    builds: list[tuple[str, str]] = []
    now = [0.0]
    fake = FakeProvider()
    r = ProviderRegistry(
        m, ttl_seconds=1, builders={"vault": builder_for(fake, builds)}, clock=lambda: now[0]
    )
    assert await r.get("vault", "us-east-1") is fake
    assert await r.get("vault", "us-east-1") is fake
    assert builds == [("fake", "us-east-1")]
    assert (
        sample(reg, "noetl_secret_provider_build_total", provider="vault", region="us-east-1", status="ok")
        == 1
    )
    assert (
        sample(
            reg, "noetl_secret_provider_build_total", provider="vault", region="us-east-1", status="cache_hit"
        )
        == 1
    )
    await r.get("vault", "eu-west-1")
    assert len(builds) == 2
    now[0] = 1.0  # elapsed == ttl: still fresh
    await r.get("vault", "us-east-1")
    assert len(builds) == 2
    now[0] = 1.5
    await r.get("vault", "us-east-1")
    assert len(builds) == 3
    await r.get("vault", "")
    assert sample(reg, "noetl_secret_provider_build_total", provider="vault", region="-", status="ok") == 1


async def test_registry_build_failure_not_cached() -> None:
    m, reg = metrics()
    attempts = [0]

    def flaky(settings: object, region: str) -> FakeProvider:
        attempts[0] += 1
        if attempts[0] == 1:
            raise SecretConfigError(
                "aws secrets manager: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are required"
            )
        return FakeProvider()

    r = ProviderRegistry(m, builders={"aws": flaky})
    with pytest.raises(SecretConfigError):
        await r.get("aws_sm", "us-east-1")
    assert len(r) == 0
    await r.get("aws", "us-east-1")
    assert attempts[0] == 2
    assert (
        sample(reg, "noetl_secret_provider_build_total", provider="aws", region="us-east-1", status="error")
        == 1
    )


def _m():  # type: ignore[no-untyped-def]
    return metrics()[0]


async def test_registry_real_builders_with_settings() -> None:
    m, _ = metrics()
    r = ProviderRegistry(
        m, settings_factory=lambda: __import__("app.config.secrets").config.secrets.ProviderSettings()
    )
    p = await r.get("vault", "x")
    assert p.provider_id == "vault"
    assert (await r.get("aws_iam", "x")).provider_id == "aws_sts"
    assert (await r.get("gcp_iamcredentials", "x")).provider_id == "gcp_iam"
    with pytest.raises(SecretConfigError, match="AZURE_TENANT_ID"):
        await r.get("azure_aad", "x")
    r2 = ProviderRegistry(_m(), builders={})
    with pytest.raises(SecretConfigError, match="not available"):
        await r2.get("aws_sts", "x")
    await r.close()


def test_settings_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOETL_SECRET_PROVIDER_TTL_SECONDS", "1")
    monkeypatch.setenv("NOETL_SECRET_AUDIT_REQUIRED", "yes")
    monkeypatch.setenv("KEYCHAIN_CACHE_DYNAMIC_SAFETY_MARGIN_SECS", "30")
    s = SecretsSettings()
    assert s.provider_ttl_seconds == 1
    assert s.audit_required is True
    assert s.cache_safety_margin_secs == 30


@pytest.mark.parametrize(
    ("env", "insecure", "audit"),
    [
        (" YES ", True, True),
        ("on", True, False),
        ("banana", False, False),
        ("0", False, False),
        ("1", True, True),
    ],
)
def test_settings_truthy_flags(
    monkeypatch: pytest.MonkeyPatch, env: str, insecure: bool, audit: bool
) -> None:
    monkeypatch.setenv("NOETL_ALLOW_INSECURE_DEFAULT_KEY", env)
    monkeypatch.setenv("NOETL_SECRET_AUDIT_REQUIRED", env)
    s = SecretsSettings()
    assert s.allow_insecure_default_key is insecure
    assert s.audit_required is audit


@pytest.mark.parametrize(("raw", "ttl"), [("abc", 0.0), ("0", 0.0), ("5", 5.0), ("-3", 0.0)])
def test_settings_provider_ttl(monkeypatch: pytest.MonkeyPatch, raw: str, ttl: float) -> None:
    monkeypatch.setenv("NOETL_SECRET_PROVIDER_TTL_SECONDS", raw)
    assert SecretsSettings().provider_ttl_seconds == ttl
