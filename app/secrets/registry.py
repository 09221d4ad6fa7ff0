"""Process-wide provider registry keyed by (implementation id, region), optional TTL (secrets.md §4.4)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from app.config.secrets import ProviderSettings
from app.secrets.errors import SecretConfigError
from app.secrets.metrics import SecretsMetrics, region_label
from app.secrets.providers import aws, azure, azure_oauth, gcp, gcp_iam, k8s, sts, vault
from app.secrets.providers.base import SecretProvider

log = logging.getLogger(__name__)

PROVIDER_IDS: dict[str, str] = {
    "gcp": "gcp",
    "gcp_iam": "gcp_iam",
    "gcp_iamcredentials": "gcp_iam",
    "k8s": "k8s",
    "kubernetes": "k8s",
    "vault": "vault",
    "aws": "aws",
    "aws_sm": "aws",
    "aws_sts": "aws_sts",
    "aws_iam": "aws_sts",
    "azure": "azure",
    "azure_kv": "azure",
    "azure_oauth": "azure_oauth",
    "azure_aad": "azure_oauth",
}
STALE_CLOSE_GRACE_SECS = 30.0
SUPPORTED = "gcp, gcp_iam, k8s, vault, aws, aws_sts, azure, azure_oauth"

Builder = Callable[[ProviderSettings, str], SecretProvider]

DEFAULT_BUILDERS: dict[str, Builder] = {
    "gcp": gcp.build,
    "k8s": k8s.build,
    "vault": vault.build,
    "aws": aws.build,
    "azure": azure.build,
    "aws_sts": sts.build,
    "azure_oauth": azure_oauth.build,
    "gcp_iam": gcp_iam.build,
}


class UnsupportedProvider(SecretConfigError):
    """The keychain entry names a provider id this server does not know (500)."""

    def __init__(self, provider: str) -> None:
        super().__init__(f"unsupported keychain secret provider '{provider}' (supported: {SUPPORTED})")


def implementation_id(provider: str) -> str:
    """Map a keychain ``provider:`` value (exact, case-sensitive) to its implementation id."""
    try:
        return PROVIDER_IDS[provider]
    except KeyError:
        raise UnsupportedProvider(provider) from None


@dataclass
class _Entry:
    provider: SecretProvider
    built_at: float


class ProviderRegistry:
    """Builds each (provider, region) once; stale entries (``elapsed > ttl``) rebuilt; failures not cached."""

    def __init__(
        self,
        metrics: SecretsMetrics,
        *,
        ttl_seconds: float = 0.0,
        settings_factory: Callable[[], ProviderSettings] = ProviderSettings,
        builders: Mapping[str, Builder] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics = metrics
        self._ttl = ttl_seconds if ttl_seconds > 0 else 0.0
        self._settings_factory = settings_factory
        self._builders = dict(DEFAULT_BUILDERS if builders is None else builders)
        self._clock = clock
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._lock = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()

    def _fresh(self, entry: _Entry | None) -> bool:
        return entry is not None and (not self._ttl or self._clock() - entry.built_at <= self._ttl)

    async def get(self, provider: str, region: str) -> SecretProvider:
        """The provider instance for ``(implementation id, region)``, building it when needed."""
        impl = implementation_id(provider)
        key = (impl, region)
        labels = {"provider": impl, "region": region_label(region)}
        entry = self._entries.get(key)
        if self._fresh(entry):
            self._metrics.provider_build.labels(status="cache_hit", **labels).inc()
            return entry.provider  # type: ignore[union-attr]
        async with self._lock:
            entry = self._entries.get(key)
            if self._fresh(entry):
                self._metrics.provider_build.labels(status="cache_hit", **labels).inc()
                return entry.provider  # type: ignore[union-attr]
            try:
                builder = self._builders.get(impl)
                if builder is None:
                    raise SecretConfigError(
                        f"keychain secret provider '{impl}' is not available in this build"
                    )
                # Providers read their env when built, so each (re)build sees current settings.
                built = builder(self._settings_factory(), region)
            except Exception:
                self._metrics.provider_build.labels(status="error", **labels).inc()
                raise
            self._metrics.provider_build.labels(status="ok", **labels).inc()
            self._entries[key] = _Entry(built, self._clock())
        if entry is not None:
            self._retire(entry.provider)
        return built

    def _retire(self, provider: SecretProvider) -> None:
        # A stale instance may still be serving an in-flight fetch: close it after the longest HTTP timeout.
        loop = asyncio.get_running_loop()

        def close() -> None:
            task = loop.create_task(provider.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

        loop.call_later(STALE_CLOSE_GRACE_SECS, close)

    def __len__(self) -> int:
        return len(self._entries)

    async def close(self) -> None:
        """Close every provider (shutdown)."""
        for entry in self._entries.values():
            try:
                await entry.provider.close()
            except Exception:
                log.warning("secret provider close failed", exc_info=True)
        self._entries.clear()
