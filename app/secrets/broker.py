"""Cross-region broker: requesting-side client and the broker endpoint's checks (secrets.md §6.2)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from app.errors import Forbidden
from app.secrets.encoding import b64encode, loads
from app.secrets.errors import BrokerDenied, BrokerUnreachable, ResidencyViolation
from app.secrets.metrics import SecretsMetrics, region_label
from app.secrets.sealed import decode_broker_pubkey

log = logging.getLogger(__name__)

RESOLVE_PATH = "/api/internal/cross-region/resolve"


def parse_broker_registry(raw: str) -> dict[str, str]:
    """``{"<region>": "<base url>"}``; unset/invalid/non-string values → empty; empty URLs dropped."""
    if not raw or not raw.strip():
        return {}
    try:
        doc = json.loads(raw)
    except ValueError:
        log.warning("NOETL_SECRET_BROKER_REGISTRY is not valid JSON; cross-region brokering disabled")
        return {}
    if not isinstance(doc, dict) or not all(isinstance(v, str) for v in doc.values()):
        log.warning("NOETL_SECRET_BROKER_REGISTRY must map regions to URL strings; brokering disabled")
        return {}
    return {k: v for k, v in doc.items() if v}


@dataclass(frozen=True)
class BrokerRequest:
    """Body of the broker call; ``to_json`` keeps the spec's field order."""

    alias: str
    worker_public_key_b64: str
    worker_id: str
    execution_id: int | None
    parent_execution_id: int | None
    expected_entry_region: str
    requesting_region: str

    def to_json(self) -> str:
        """Compact JSON in declaration order."""
        return json.dumps(
            {
                "alias": self.alias,
                "worker_public_key_b64": self.worker_public_key_b64,
                "worker_id": self.worker_id,
                "execution_id": self.execution_id,
                "parent_execution_id": self.parent_execution_id,
                "expected_entry_region": self.expected_entry_region,
                "requesting_region": self.requesting_region,
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )


def _broker_message(text: str) -> str:
    try:
        doc = loads(text)
    except ValueError:
        return text[:200]
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return str(doc["error"])
    return text[:200]


class BrokerClient:
    """Forwards residency-denied sealed requests to the broker of the credential's home region."""

    def __init__(
        self,
        registry: dict[str, str],
        token: str,
        metrics: SecretsMetrics,
        *,
        timeout_secs: float = 10.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._registry = registry
        self._token = token
        self._metrics = metrics
        self._timeout = aiohttp.ClientTimeout(total=timeout_secs)
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"BrokerClient(regions={sorted(self._registry)!r})"

    def url_for(self, region: str) -> str | None:
        """Broker base URL for ``region`` or None."""
        return self._registry.get(region)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def resolve(self, request: BrokerRequest) -> str:
        """Call the broker for ``request.expected_entry_region``; returns its envelope body verbatim."""
        region = request.expected_entry_region
        base = self._registry.get(region)
        if base is None:
            raise LookupError(f"no broker registered for region '{region}'")
        url = base.rstrip("/") + RESOLVE_PATH
        label = region_label(region)
        started = self._clock()
        outcome = "unreachable"
        try:
            try:
                async with self._http().post(
                    url,
                    data=request.to_json().encode("utf-8"),
                    headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"},
                ) as resp:
                    text = await resp.text()
                    status, reason = resp.status, resp.reason or ""
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise BrokerUnreachable(base, f"{type(exc).__name__}: {exc}") from None
            if status == 403:
                outcome = "denied_by_broker"
                raise BrokerDenied(_broker_message(text))
            if status // 100 != 2:
                raise BrokerUnreachable(base, f"broker returned HTTP {status} {reason}: {text[:200]}")
            try:
                loads(text)
            except ValueError:
                raise BrokerUnreachable(base, "broker returned an undecodable body") from None
            outcome = "ok"
            # Passed through verbatim: only the addressed worker can (and will) validate it.
            return text
        finally:
            self._metrics.broker_call.labels(broker_region=label, outcome=outcome).inc()
            self._metrics.broker_duration.labels(broker_region=label).observe(self._clock() - started)

    def can_forward(self, violation: ResidencyViolation) -> bool:
        """True when the entry allows brokering and a broker serves its region."""
        return not violation.no_broker_fallback and self.url_for(violation.entry_region) is not None

    async def forward(
        self,
        violation: ResidencyViolation,
        *,
        alias: str,
        worker_public_key: bytes,
        worker_id: str,
        execution_id: int | None,
        parent_execution_id: int | None,
        requesting_region: str,
    ) -> str:
        """Sealed-route fallback: re-raise the 403 when brokering is not allowed, else call the broker."""
        if not self.can_forward(violation):
            raise violation
        return await self.resolve(
            BrokerRequest(
                alias=alias,
                worker_public_key_b64=b64encode(worker_public_key),
                worker_id=worker_id,
                execution_id=execution_id,
                parent_execution_id=parent_execution_id,
                expected_entry_region=violation.entry_region,
                requesting_region=requesting_region,
            )
        )


def broker_check_request(
    expected_entry_region: str, my_region: str, worker_public_key_b64: str, metrics: SecretsMetrics
) -> bytes:
    """Broker checks 1–2: region match (403 ``wrong_region``), then the pubkey (400 ``bad_pubkey``)."""
    if expected_entry_region != my_region:
        metrics.broker_call.labels(
            broker_region=region_label(expected_entry_region), outcome="wrong_region"
        ).inc()
        raise Forbidden(
            f"cross-region broker: this server is in region '{my_region}', not '{expected_entry_region}' "
            "as the requesting peer expected",
            code="wrong_region",
        )
    try:
        return decode_broker_pubkey(worker_public_key_b64)
    except Exception:
        metrics.broker_call.labels(broker_region=region_label(my_region), outcome="bad_pubkey").inc()
        raise
