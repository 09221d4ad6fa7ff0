"""Keychain cache decisions: dynamic TTL, refresh window, cache keys, stampede slots (§3.3, §4.3)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

KEYCHAIN_CACHE_TTL_SECS = 600
MIN_EFFECTIVE_TTL_SECS = 5

Timestamp = datetime | float | int


def _epoch(t: Timestamp) -> float:
    return t.timestamp() if isinstance(t, datetime) else float(t)


@dataclass(frozen=True)
class CacheFor:
    """Cache the value for ``secs`` seconds from now."""

    secs: int


@dataclass(frozen=True)
class SkipCacheAlreadyExpired:
    """The issuer's expiry (minus the margin) has passed: return the value, do not cache it."""


CacheDecision = CacheFor | SkipCacheAlreadyExpired


def effective_cache_ttl(
    expires_at: Timestamp | None,
    default_ttl: int = KEYCHAIN_CACHE_TTL_SECS,
    now: Timestamp = 0.0,
    margin: float = 60.0,
) -> CacheDecision:
    """Cache TTL for a value with an optional issuer expiry; floored at 5 s (§4.3 table)."""
    if expires_at is None:
        return CacheFor(default_ttl)
    remaining = _epoch(expires_at) - margin - _epoch(now)
    if remaining <= 0:
        return SkipCacheAlreadyExpired()
    return CacheFor(max(min(int(remaining), default_ttl), MIN_EFFECTIVE_TTL_SECS))


def should_refresh(expires_at: Timestamp | None, window: float, now: Timestamp) -> bool:
    """True when ``expires_at`` is in the future but within ``window`` seconds (boundary inclusive)."""
    if expires_at is None:
        return False
    exp, n = _epoch(expires_at), _epoch(now)
    return exp > n and exp - window <= n


ScopeType = Literal["local", "shared", "global"]


def keychain_cache_key(name: str, catalog_id: int, scope_type: str, execution_id: int | None) -> str:
    """The keychain table's primary key for a scope (§3.3); unknown scope → ValueError."""
    if scope_type == "local":
        return (
            f"{name}:{catalog_id}:{execution_id}"
            if execution_id is not None
            else f"{name}:{catalog_id}:local"
        )
    if scope_type == "shared":
        suffix = f":{execution_id}" if execution_id is not None else ""
        return f"{name}:{catalog_id}:shared{suffix}"
    if scope_type == "global":
        return f"{name}:{catalog_id}:global"
    raise ValueError(f"invalid scope_type '{scope_type}' (expected local, shared or global)")


def resolver_cache_key(alias: str, catalog_id: int, execution_id: int) -> str:
    """Cache key the resolver reads and writes: scope ``local`` with the execution id."""
    return f"{alias}:{catalog_id}:{execution_id}"


class InflightSlots:
    """Process-wide in-flight set keyed by ``(catalog_id, alias)``: one refresh at a time per key."""

    def __init__(self) -> None:
        self._busy: set[tuple[int, str]] = set()

    def claim(self, key: tuple[int, str]) -> bool:
        """Take the slot; False when another refresh holds it."""
        if key in self._busy:
            return False
        self._busy.add(key)
        return True

    def release(self, key: tuple[int, str]) -> None:
        """Free the slot (always, even after a failure)."""
        self._busy.discard(key)

    def __contains__(self, key: object) -> bool:
        return key in self._busy
