"""Application snowflake ids (server-contract §16.1)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

NOETL_EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
TIME_SHIFT = 22
NODE_SHIFT = 12
NODE_MASK = 0x3FF
SEQ_MASK = 0xFFF

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3


def fnv1a_64(data: bytes) -> int:
    """FNV-1a 64-bit hash."""
    h = _FNV_OFFSET
    for b in data:
        h ^= b
        h = (h * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


def node_id_from_name(name: str) -> int:
    """Derive a 10-bit node id from a host or worker name."""
    return fnv1a_64(name.encode("utf-8")) & NODE_MASK


@dataclass(frozen=True)
class DecodedId:
    timestamp_ms: int
    node: int
    sequence: int

    @property
    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, tz=UTC)


def decode(snowflake: int) -> DecodedId:
    """Split an application snowflake into time, node and sequence."""
    return DecodedId(
        timestamp_ms=(snowflake >> TIME_SHIFT) + NOETL_EPOCH_MS,
        node=(snowflake >> NODE_SHIFT) & NODE_MASK,
        sequence=snowflake & SEQ_MASK,
    )


def compose(timestamp_ms: int, node: int, sequence: int, epoch_ms: int = NOETL_EPOCH_MS) -> int:
    """Build an id from its parts."""
    return (
        ((timestamp_ms - epoch_ms) << TIME_SHIFT) | ((node & NODE_MASK) << NODE_SHIFT) | (sequence & SEQ_MASK)
    )


class SnowflakeGenerator:
    """Monotonic id generator; never goes backwards on clock steps or sequence overflow."""

    def __init__(
        self,
        node: int,
        *,
        epoch_ms: int = NOETL_EPOCH_MS,
        clock: object = None,
    ) -> None:
        if not 0 <= node <= NODE_MASK:
            raise ValueError(f"node id {node} outside 0..1023")
        self.node = node
        self.epoch_ms = epoch_ms
        self._clock = clock if callable(clock) else (lambda: time.time_ns() // 1_000_000)
        self._lock = threading.Lock()
        self._last_ms = -1
        self._seq = 0

    def next_id(self) -> int:
        """Mint the next id."""
        with self._lock:
            now = int(self._clock())  # type: ignore[operator]
            if now < self._last_ms:
                # Clock stepped back: keep minting on the last timestamp.
                now = self._last_ms
            if now == self._last_ms:
                self._seq = (self._seq + 1) & SEQ_MASK
                if self._seq == 0:
                    # 4096 ids in one ms: move to the next logical ms rather than waiting on a
                    # clock that may be stuck behind us.
                    now = self._last_ms + 1
            else:
                self._seq = 0
            self._last_ms = now
            return ((now - self.epoch_ms) << TIME_SHIFT) | (self.node << NODE_SHIFT) | self._seq

    def ids(self, n: int) -> list[int]:
        """Mint n ids."""
        return [self.next_id() for _ in range(n)]


def id_time_ms(snowflake: int, epoch_ms: int = NOETL_EPOCH_MS) -> int:
    """Unix milliseconds encoded in an application snowflake."""
    return (snowflake >> TIME_SHIFT) + epoch_ms
