"""The secrets wallet as the server uses it: built once at start-up, wired to the database lookups.

``build_wallet`` validates the key/KMS configuration before anything is opened (a malformed
``NOETL_ENCRYPTION_KEY`` refuses to start); ``WalletRuntime.attach`` wires the resolver and the sealed
service to the pool once it is open. An unset key leaves ``wallet.cipher`` None: the routes that need the
cipher answer 500 ``NOETL_ENCRYPTION_KEY is not configured`` and everything else works.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from app.config import Settings
from app.errors import ConfigError
from app.ids import SnowflakeGenerator
from app.metrics import Metrics
from app.secrets.audit import AuditEvent, outcome_for
from app.secrets.envelope import EnvelopeCipher
from app.secrets.resolver import CacheHit, CacheWrite, CredentialRecord, Resolved, SecretResolver, StartEvent
from app.secrets.sealed_service import SealedService
from app.secrets.wallet import SecretsWallet
from app.services import credentials, keychain, secret_audit

log = logging.getLogger(__name__)


@dataclass
class WalletRuntime:
    """The process's wallet, resolver and sealed service."""

    wallet: SecretsWallet
    _pool: asyncpg.Pool | None = None
    _resolver: SecretResolver | None = field(default=None, repr=False)
    _sealed: SealedService | None = field(default=None, repr=False)

    # -- wiring

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("wallet used before the database pool was attached")
        return self._pool

    def attach(self, pool: asyncpg.Pool) -> None:
        """Build the resolver and sealed service over the open pool."""
        self._pool = pool
        w = self.wallet
        self._resolver = w.resolver(
            credential_lookup=self._credential_lookup,
            start_event_lookup=self._start_event_lookup,
            catalog_lookup=self._catalog_lookup,
            cache_get=self._cache_get,
            cache_put=self._cache_put,
        )
        self._sealed = SealedService(
            self._resolver, w.broker, w.metrics, w.audit, server_region=w.server_region
        )

    @property
    def resolver(self) -> SecretResolver:
        assert self._resolver is not None, "attach() first"
        return self._resolver

    @property
    def sealed(self) -> SealedService:
        assert self._sealed is not None, "attach() first"
        return self._sealed

    def cipher(self) -> EnvelopeCipher:
        """The envelope cipher, or the 500 ``NOETL_ENCRYPTION_KEY is not configured``."""
        return self.wallet.require_cipher()

    async def close(self) -> None:
        """Finish background refreshes and pending audit writes, then close HTTP clients."""
        if self._resolver is not None:
            await self._resolver.drain()
        await self.wallet.close()

    # -- injected lookups

    async def _credential_lookup(self, identifier: str) -> CredentialRecord | None:
        return await credentials.lookup(self.pool, identifier)

    async def _start_event_lookup(self, execution_id: int) -> StartEvent | None:
        return await credentials.start_event(self.pool, execution_id)

    async def _catalog_lookup(self, catalog_id: int) -> str | None:
        return await credentials.catalog_content(self.pool, catalog_id)

    async def _cache_get(self, key: str) -> CacheHit | None:
        return await keychain.cache_get(self.pool, self.cipher(), key)

    async def _cache_put(self, write: CacheWrite) -> None:
        await keychain.cache_put(self.pool, self.cipher(), write)

    async def write_audit(self, ev: AuditEvent) -> None:
        await secret_audit.insert(self.pool, ev)

    async def pubkey_lookup(self, worker_id: str) -> str | None:
        return await credentials.worker_pubkey(self.pool, worker_id)

    # -- flows used by the routes

    async def get_with_data(
        self, identifier: str, execution_id: int | None, parent_execution_id: int | None
    ) -> Resolved:
        """Resolve with data (§4.2), audited as ``get_credential`` (strict mode: before release)."""
        self.cipher()
        audit = self.wallet.audit
        ctx: dict[str, Any] = {"execution_id": execution_id, "parent_execution_id": parent_execution_id}
        try:
            resolved = await self.resolver.resolve(
                identifier, execution_id, parent_execution_id=parent_execution_id
            )
        except Exception as exc:
            try:
                await audit.record(audit.event(identifier, "get_credential", outcome_for(exc), **ctx))
            except Exception:
                log.warning("secret audit write failed while reporting a failed credential read")
            raise
        await audit.record(
            audit.event(identifier, "get_credential", "ok", kek_version=resolved.kek_version, **ctx)
        )
        return resolved

    async def get_sealed(
        self, identifier: str, worker_id: str, execution_id: int | None, parent_execution_id: int | None
    ) -> str:
        """The sealed endpoint (§3.2): the envelope JSON text."""
        self.cipher()
        return await self.sealed.get_sealed(
            identifier,
            worker_id,
            self.pubkey_lookup,
            execution_id=execution_id,
            parent_execution_id=parent_execution_id,
        )


def build_wallet(settings: Settings, metrics: Metrics, ids: SnowflakeGenerator) -> WalletRuntime:
    """Validate the key/KMS settings and build the wallet; ConfigError names the variable."""
    holder: dict[str, WalletRuntime] = {}

    async def write_audit(ev: AuditEvent) -> None:
        await holder["runtime"].write_audit(ev)

    try:
        wallet = SecretsWallet.build(
            prom_registry=metrics.registry,
            audit_writer=write_audit,
            id_factory=ids.next_id,
            server_region=settings.server.region,
            internal_api_token=settings.server.internal_api_token.strip(),
            settings=settings.secrets,
        )
    except ConfigError as exc:
        message = str(exc)
        if "NOETL_" not in message:
            message = f"NOETL_ENCRYPTION_KEY: {message}"
        raise ConfigError(message) from None
    runtime = WalletRuntime(wallet)
    holder["runtime"] = runtime
    return runtime
