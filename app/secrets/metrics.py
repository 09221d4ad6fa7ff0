"""Every secrets metric of secrets.md §8, on an injected registry; no id/value labels."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

SEALED_STATUSES = (
    "ok",
    "ok_via_broker",
    "no_pubkey",
    "worker_not_found",
    "residency_violation",
    "credential_error",
    "seal_error",
)
REFRESH_OUTCOMES = ("triggered", "stampede_collapsed", "succeeded", "failed", "decision_failed")


def region_label(region: str | None) -> str:
    """Metric label for a region: ``-`` when empty."""
    return region or "-"


class SecretsMetrics:
    """The secrets wallet's metric families; build once per process registry."""

    def __init__(self, registry: CollectorRegistry, *, include_write_metrics: bool = False) -> None:
        r = registry
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        # noetl_write_requests_* are shared with other write routes; the lead may own them.
        self.write_requests: Counter | None = None
        self.write_duration: Histogram | None = None
        if include_write_metrics:
            self.write_requests = Counter(
                "noetl_write_requests_total", "Write requests", ["endpoint", "status"], registry=r
            )
            self.write_duration = Histogram(
                "noetl_write_request_duration_seconds",
                "Write request duration",
                ["endpoint"],
                buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                registry=r,
            )
        self.sealed = Counter(
            "noetl_credentials_sealed_total", "Sealed credential requests", ["status"], registry=r
        )
        for s in SEALED_STATUSES:
            self.sealed.labels(status=s)
        self.resolve = Counter(
            "noetl_secret_resolve_total",
            "Keychain provider resolutions",
            ["provider", "region", "status"],
            registry=r,
        )
        self.resolve_duration = Histogram(
            "noetl_secret_resolve_duration_seconds",
            "Provider fetch duration (every attempt)",
            ["provider", "region"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
            registry=r,
        )
        self.provider_build = Counter(
            "noetl_secret_provider_build_total",
            "Provider registry lookups",
            ["provider", "region", "status"],
            registry=r,
        )
        self.residency_check = Counter(
            "noetl_secret_residency_check_total",
            "Residency gate evaluations",
            ["policy", "decision"],
            registry=r,
        )
        self.dynamic_ttl = Histogram(
            "noetl_secret_dynamic_ttl_seconds",
            "Issuer-reported TTL at resolution time",
            buckets=(60, 300, 900, 3600, 14400, 43200),
            registry=r,
        )
        self.cache_skip = Counter(
            "noetl_secret_cache_skip_total", "Keychain cache writes skipped", ["reason"], registry=r
        )
        self.broker_call = Counter(
            "noetl_secret_broker_call_total",
            "Cross-region broker calls",
            ["broker_region", "outcome"],
            registry=r,
        )
        self.broker_duration = Histogram(
            "noetl_secret_broker_call_duration_seconds",
            "Cross-region broker round trip",
            ["broker_region"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5),
            registry=r,
        )
        self.rotate = Counter(
            "noetl_wallet_rotate_total", "KEK rotation row outcomes", ["table", "status"], registry=r
        )
        self.audit_writes = Counter(
            "noetl_secret_audit_writes_total",
            "Secret audit writes",
            ["operation", "outcome", "status"],
            registry=r,
        )
        self.refresh = Counter(
            "noetl_secret_refresh_total", "Keychain background refresh", ["outcome"], registry=r
        )
        for o in REFRESH_OUTCOMES:
            self.refresh.labels(outcome=o)
        self.refresh_duration = Histogram(
            "noetl_secret_refresh_duration_seconds",
            "Keychain background refresh duration",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5),
            registry=r,
        )

    def child(self, metric: Any, *values: str) -> Any:
        """Cached ``metric.labels(*values)`` for hot paths (positional, declaration order)."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = metric.labels(*values)
            self._children[key] = found
        return found


def new_metrics() -> SecretsMetrics:
    """Metrics on a private registry (tests, benchmarks)."""
    return SecretsMetrics(CollectorRegistry())
