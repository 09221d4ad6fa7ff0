"""The sealed-credential endpoint (§3.2) and the broker endpoint (§6.2) as route-independent flows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from app.errors import BadRequest, NoetlError
from app.secrets.audit import AuditSink, outcome_for
from app.secrets.broker import BrokerClient, broker_check_request
from app.secrets.errors import ResidencyViolation, SealingRefused
from app.secrets.metrics import SecretsMetrics, region_label
from app.secrets.resolver import Resolved, SecretResolver
from app.secrets.response import response_for
from app.secrets.sealed import decode_worker_pubkey, seal

# Returns the runtime row's ``worker_public_key`` (None when the row, runtime or key is absent).
PubkeyLookup = Callable[[str], Awaitable[str | None]]


def _no_pubkey(worker_id: str) -> BadRequest:
    return BadRequest(
        f"worker '{worker_id}' did not register a sealing pubkey (worker_public_key missing from the "
        "noetl.runtime row, or the worker_pool row doesn't exist)"
    )


class SealedService:
    """Runs the sealed endpoint in order, recording ``noetl_credentials_sealed_total`` and audit rows."""

    def __init__(
        self,
        resolver: SecretResolver,
        broker: BrokerClient,
        metrics: SecretsMetrics,
        audit: AuditSink,
        *,
        server_region: str = "",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._resolver = resolver
        self._broker = broker
        self._metrics = metrics
        self._audit = audit
        self._region = server_region
        self._clock = clock

    async def _record(self, identifier: str, outcome: str, **kw: object) -> None:
        await self._audit.record(self._audit.event(identifier, "get_sealed", outcome, **kw))  # type: ignore[arg-type]

    async def get_sealed(
        self,
        identifier: str,
        worker_id: str,
        pubkey_lookup: PubkeyLookup,
        *,
        execution_id: int | None = None,
        parent_execution_id: int | None = None,
    ) -> str:
        """Return the SealedEnvelope JSON text (ours, or the broker's verbatim); raise the mapped error."""
        ctx = {
            "worker_id": worker_id,
            "execution_id": execution_id,
            "parent_execution_id": parent_execution_id,
        }
        label = self._metrics.sealed
        try:
            raw = await pubkey_lookup(worker_id)
        except Exception:
            label.labels(status="worker_not_found").inc()
            await self._record(identifier, "worker_not_found", **ctx)
            raise
        if not raw:
            label.labels(status="no_pubkey").inc()
            await self._record(identifier, "no_pubkey", **ctx)
            raise _no_pubkey(worker_id)
        try:
            pub = decode_worker_pubkey(worker_id, raw)
        except BadRequest:
            label.labels(status="worker_not_found").inc()
            await self._record(identifier, "worker_not_found", **ctx)
            raise
        try:
            resolved: Resolved = await self._resolver.resolve(
                identifier, execution_id, parent_execution_id=parent_execution_id
            )
        except ResidencyViolation as violation:
            if not self._broker.can_forward(violation):
                label.labels(status="residency_violation").inc()
                await self._record(identifier, "residency_violation", **ctx)
                raise
            try:
                envelope = await self._broker.forward(
                    violation,
                    alias=identifier,
                    worker_public_key=pub,
                    worker_id=worker_id,
                    execution_id=execution_id,
                    parent_execution_id=parent_execution_id,
                    requesting_region=self._region,
                )
            except Exception as exc:
                # Broker failures carry no sealed-counter label (§3.2).
                await self._record(
                    identifier, outcome_for(exc), broker_region=violation.entry_region or None, **ctx
                )
                raise
            label.labels(status="ok_via_broker").inc()
            await self._record(identifier, "ok", broker_region=violation.entry_region or None, **ctx)
            return envelope
        except Exception as exc:
            label.labels(status="credential_error").inc()
            await self._record(identifier, outcome_for(exc), **ctx)
            raise
        now = self._clock() if self._clock else None
        try:
            envelope_json = seal(pub, response_for(resolved, identifier, now=now).encode("utf-8")).to_json()
        except Exception:
            label.labels(status="seal_error").inc()
            await self._record(identifier, "seal_error", kek_version=resolved.kek_version, **ctx)
            raise SealingRefused("failed to seal the credential to the worker key") from None
        await self._record(identifier, "ok", kek_version=resolved.kek_version, **ctx)
        label.labels(status="ok").inc()
        return envelope_json

    async def serve_broker(
        self,
        *,
        alias: str,
        worker_public_key_b64: str,
        worker_id: str,
        execution_id: int | None,
        parent_execution_id: int | None,
        expected_entry_region: str,
        requesting_region: str,
    ) -> str:
        """Broker endpoint: region check, pubkey, resolve locally, seal to the supplied key (§6.2)."""
        ctx = {
            "worker_id": worker_id,
            "execution_id": execution_id,
            "parent_execution_id": parent_execution_id,
        }
        mine = region_label(self._region)

        async def audit(outcome: str, **kw: object) -> None:
            ev = self._audit.event(
                alias, "cross_region_broker_serve", outcome, notes=f"from {requesting_region}", **ctx, **kw
            )  # type: ignore[arg-type]
            await self._audit.record(ev)

        try:
            pub = broker_check_request(
                expected_entry_region, self._region, worker_public_key_b64, self._metrics
            )
        except NoetlError as exc:
            await audit("wrong_region" if exc.status == 403 else "bad_pubkey")
            raise
        try:
            resolved = await self._resolver.resolve(
                alias, execution_id, parent_execution_id=parent_execution_id
            )
        except Exception as exc:
            self._metrics.broker_call.labels(broker_region=mine, outcome="resolve_error").inc()
            await audit(outcome_for(exc))
            raise
        try:
            body = response_for(resolved, alias, now=self._clock() if self._clock else None).encode("utf-8")
        except Exception:
            self._metrics.broker_call.labels(broker_region=mine, outcome="serialize_error").inc()
            await audit("serialize_error")
            raise
        try:
            envelope = seal(pub, body).to_json()
        except Exception:
            self._metrics.broker_call.labels(broker_region=mine, outcome="seal_error").inc()
            await audit("seal_error")
            raise SealingRefused("failed to seal the credential to the worker key") from None
        await audit("ok", kek_version=resolved.kek_version)
        self._metrics.broker_call.labels(broker_region=mine, outcome="ok").inc()
        return envelope
