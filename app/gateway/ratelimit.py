"""Per-client token buckets (gateway.md §4.7), one per route family and replica."""

from __future__ import annotations

import time


class RateLimiter:
    """`per_minute` requests per key, refilled continuously; bounded key table."""

    def __init__(self, per_minute: int, max_keys: int = 10000) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str) -> bool:
        """Take one token for `key`; False when the bucket is empty."""
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        if len(self._buckets) >= self.max_keys and key not in self._buckets:
            self._buckets.clear()
        self._buckets[key] = (tokens - 1.0, now)
        return True

    def retry_after(self) -> int:
        """Seconds until one token is back."""
        return max(1, int(1 / self.rate + 0.999))
