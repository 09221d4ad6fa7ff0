"""Secret audit events and the sink with async (fire-and-forget) and strict modes (secrets.md §6.3)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from app.errors import NotFound
from app.secrets.encoding import format_rfc3339
from app.secrets.errors import (
    AuditWriteFailed,
    BrokerDenied,
    BrokerUnreachable,
    ProviderFetchError,
    ResidencyViolation,
)
from app.secrets.metrics import SecretsMetrics

log = logging.getLogger(__name__)

Operation = Literal["get_sealed", "cross_region_broker_serve", "resolve_keychain", "get_credential"]
OPERATIONS: tuple[str, ...] = (
    "get_sealed",
    "cross_region_broker_serve",
    "resolve_keychain",
    "get_credential",
)


@dataclass(frozen=True)
class AuditEvent:
    """One audit row; never carries the secret value."""

    audit_id: int
    occurred_at: datetime
    credential: str
    operation: str
    outcome: str
    worker_id: str | None = None
    execution_id: int | None = None
    parent_execution_id: int | None = None
    server_region: str | None = None
    broker_region: str | None = None
    kek_version: str | None = None
    notes: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON shape in field order, nulls included, ``occurred_at`` as RFC 3339 ``Z``."""
        return {
            "audit_id": self.audit_id,
            "occurred_at": format_rfc3339(self.occurred_at),
            "credential": self.credential,
            "operation": self.operation,
            "outcome": self.outcome,
            "worker_id": self.worker_id,
            "execution_id": self.execution_id,
            "parent_execution_id": self.parent_execution_id,
            "server_region": self.server_region,
            "broker_region": self.broker_region,
            "kek_version": self.kek_version,
            "notes": self.notes,
        }


AuditWriter = Callable[[AuditEvent], Awaitable[None]]


def outcome_for(exc: BaseException | None) -> str:
    """Short outcome class for an error (``ok`` for None)."""
    if exc is None:
        return "ok"
    tagged = getattr(exc, "audit_outcome", None)
    if isinstance(tagged, str) and tagged:
        return tagged
    if isinstance(exc, ResidencyViolation):
        return "residency_violation"
    if isinstance(exc, BrokerUnreachable):
        return "broker_unreachable"
    if isinstance(exc, BrokerDenied):
        return "denied_by_broker"
    if isinstance(exc, NotFound):
        return "credential_not_found"
    if isinstance(exc, ProviderFetchError):
        return "provider_fetch_error"
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code:
        return code
    return "error"


@dataclass
class AuditSink:
    """Records events through the injected ``writer`` (the lead's DB insert)."""

    writer: AuditWriter
    metrics: SecretsMetrics
    id_factory: Callable[[], int]
    strict: bool = False
    server_region: str | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _pending: set[asyncio.Task[None]] = field(default_factory=set, repr=False)

    def event(self, credential: str, operation: str, outcome: str, **kw: Any) -> AuditEvent:
        """Build an event stamped with a fresh id, the wall clock and this server's region."""
        kw.setdefault("server_region", self.server_region or None)
        return AuditEvent(self.id_factory(), self.clock(), credential, operation, outcome, **kw)

    async def record(self, event: AuditEvent) -> None:
        """Strict: await the write (failure → AuditWriteFailed, 500). Async: fire and forget."""
        labels = {"operation": event.operation, "outcome": event.outcome}
        if self.strict:
            try:
                await self.writer(event)
            except Exception as exc:
                self.metrics.child(
                    self.metrics.audit_writes, labels["operation"], labels["outcome"], "failed_strict"
                ).inc()
                log.error("secret audit write failed (strict mode): %s", type(exc).__name__)
                raise AuditWriteFailed(
                    "secret audit write failed; credential withheld (strict audit mode)"
                ) from None
            self.metrics.child(
                self.metrics.audit_writes, labels["operation"], labels["outcome"], "written"
            ).inc()
            return
        task = asyncio.get_running_loop().create_task(self._write_async(event, labels))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write_async(self, event: AuditEvent, labels: dict[str, str]) -> None:
        try:
            await self.writer(event)
        except Exception as exc:
            self.metrics.child(
                self.metrics.audit_writes, labels["operation"], labels["outcome"], "dropped_async"
            ).inc()
            log.warning("secret audit write dropped (async mode): %s", type(exc).__name__)
            return
        self.metrics.child(self.metrics.audit_writes, labels["operation"], labels["outcome"], "written").inc()

    async def drain(self) -> None:
        """Wait for pending async writes (shutdown, tests)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
