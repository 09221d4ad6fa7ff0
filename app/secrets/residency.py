"""Residency gate: the exact decision table of secrets.md §6.1; runs before cache and providers."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from app.secrets.errors import ResidencyViolation
from app.secrets.metrics import SecretsMetrics


class Residency(StrEnum):
    NONE = "none"
    ADVISORY = "advisory"
    STRICT = "strict"


def effective_region(entry_region: str | None, server_region: str) -> str:
    """Entry region if non-empty, else the server region, else ``""``."""
    return entry_region or server_region or ""


def decide(policy: Residency, entry_region: str, server_region: str, allowed_regions: Sequence[str]) -> str:
    """The decision label; ``violation_blocked`` means deny."""
    if entry_region == "" or policy is Residency.NONE:
        return "allowed_no_policy"
    if entry_region == server_region:
        return "allowed_same_region"
    # The empty server region never matches an allowlist entry, not even "".
    if server_region and server_region in allowed_regions:
        return "allowed_in_allowlist"
    return "violation_blocked" if policy is Residency.STRICT else "violation_allowed"


def check_residency(
    credential: str,
    policy: Residency,
    entry_region: str,
    server_region: str,
    allowed_regions: Sequence[str],
    metrics: SecretsMetrics,
    *,
    no_broker_fallback: bool = False,
) -> str:
    """Evaluate once, count once, raise ResidencyViolation on a strict denial; returns the decision."""
    decision = decide(policy, entry_region, server_region, allowed_regions)
    metrics.child(metrics.residency_check, policy.value, decision).inc()
    if decision == "violation_blocked":
        raise ResidencyViolation(
            credential, entry_region, server_region, no_broker_fallback=no_broker_fallback
        )
    return decision
