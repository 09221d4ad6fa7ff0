"""Composition root: builds the wallet's shared objects once per process from settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from app.config.secrets import ProviderSettings, SecretsSettings
from app.secrets.audit import AuditSink, AuditWriter
from app.secrets.broker import BrokerClient, parse_broker_registry
from app.secrets.envelope import EnvelopeCipher
from app.secrets.errors import CipherNotConfigured
from app.secrets.keys import GcpKms, KeyManager, build_key_manager
from app.secrets.metrics import SecretsMetrics
from app.secrets.registry import ProviderRegistry
from app.secrets.resolver import (
    CacheGet,
    CachePut,
    CatalogLookup,
    CredentialLookup,
    SecretResolver,
    StartEventLookup,
)


@dataclass
class SecretsWallet:
    """Cipher, metrics, provider registry, audit sink and broker client shared by every route."""

    settings: SecretsSettings
    metrics: SecretsMetrics
    key_manager: KeyManager | None
    cipher: EnvelopeCipher | None
    registry: ProviderRegistry
    audit: AuditSink
    broker: BrokerClient
    server_region: str

    @classmethod
    def build(
        cls,
        *,
        prom_registry: CollectorRegistry,
        audit_writer: AuditWriter,
        id_factory: Callable[[], int],
        server_region: str = "",
        internal_api_token: str = "",
        settings: SecretsSettings | None = None,
        provider_settings: Callable[[], ProviderSettings] = ProviderSettings,
        include_write_metrics: bool = False,
    ) -> SecretsWallet:
        """Build at start-up; raises ConfigError for a malformed key or KMS config (refuse to start)."""
        s = settings or SecretsSettings()
        metrics = SecretsMetrics(prom_registry, include_write_metrics=include_write_metrics)
        km = build_key_manager(s, provider_settings())
        return cls(
            settings=s,
            metrics=metrics,
            key_manager=km,
            cipher=EnvelopeCipher(km) if km is not None else None,
            registry=ProviderRegistry(
                metrics, ttl_seconds=s.provider_ttl_seconds, settings_factory=provider_settings
            ),
            audit=AuditSink(
                audit_writer,
                metrics,
                id_factory,
                strict=s.audit_required,
                server_region=server_region or None,
            ),
            broker=BrokerClient(
                parse_broker_registry(s.broker_registry),
                s.broker_token or internal_api_token,
                metrics,
                timeout_secs=s.broker_timeout_secs,
            ),
            server_region=server_region,
        )

    def require_cipher(self) -> EnvelopeCipher:
        """The cipher, or 500 ``NOETL_ENCRYPTION_KEY is not configured``."""
        if self.cipher is None:
            raise CipherNotConfigured()
        return self.cipher

    def resolver(
        self,
        *,
        credential_lookup: CredentialLookup,
        start_event_lookup: StartEventLookup,
        catalog_lookup: CatalogLookup,
        cache_get: CacheGet,
        cache_put: CachePut,
    ) -> SecretResolver:
        """A resolver over the lead's database lookups (build once per process)."""
        return SecretResolver(
            cipher=self.cipher,
            credential_lookup=credential_lookup,
            start_event_lookup=start_event_lookup,
            catalog_lookup=catalog_lookup,
            cache_get=cache_get,
            cache_put=cache_put,
            registry=self.registry,
            metrics=self.metrics,
            audit=self.audit,
            server_region=self.server_region,
            cache_margin_secs=self.settings.cache_safety_margin_secs,
            refresh_window_secs=self.settings.cache_refresh_window_secs,
        )

    async def close(self) -> None:
        """Drain audit writes and close HTTP clients."""
        await self.audit.drain()
        await self.registry.close()
        await self.broker.close()
        if isinstance(self.key_manager, GcpKms):
            await self.key_manager.close()
