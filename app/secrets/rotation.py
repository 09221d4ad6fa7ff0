"""KEK rotation pass over one table through injected batch reads and conditional writes (secrets.md §1.7)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from app.secrets.envelope import EnvelopeCipher, Rewrapped, rotation_status
from app.secrets.metrics import SecretsMetrics

log = logging.getLogger(__name__)

K = TypeVar("K", int, str)

# fetch_batch(after, limit) -> [(pk, data_encrypted)] ordered by pk
FetchBatch = Callable[[K, int], Awaitable[list[tuple[K, str]]]]
# update_row(pk, old, new) -> rows updated (0 or 1): UPDATE … WHERE pk = $pk AND data_encrypted = $old
UpdateRow = Callable[[K, str, str], Awaitable[int]]


@dataclass
class RotationStats(Generic[K]):
    """Per-table counters; ``last`` is the resume cursor (last id / last cache key)."""

    processed: int = 0
    rewrapped: int = 0
    skipped: int = 0
    failed: int = 0
    last: K | None = None


def clamp(value: int | None, default: int) -> int:
    """``batch_size``/``max_batches`` default and clamp to ≥ 1."""
    return max(1, default if value is None else value)


async def rotate_table(
    table: str,
    cipher: EnvelopeCipher,
    fetch_batch: FetchBatch[K],
    update_row: UpdateRow[K],
    metrics: SecretsMetrics,
    *,
    after: K,
    batch_size: int = 100,
    max_batches: int = 1000,
) -> RotationStats[K]:
    """Re-wrap every row after ``after``; failures never abort the pass."""
    stats: RotationStats[K] = RotationStats(last=after)
    cursor = after
    for _ in range(max_batches):
        rows = await fetch_batch(cursor, batch_size)
        for pk, raw in rows:
            stats.processed += 1
            cursor = pk
            status = await _rotate_row(cipher, update_row, pk, raw)
            if status == "rewrapped":
                stats.rewrapped += 1
            elif status == "skipped":
                stats.skipped += 1
            else:
                stats.failed += 1
            metrics.rotate.labels(table=table, status=status).inc()
        stats.last = cursor
        if len(rows) < batch_size:
            break
    return stats


async def _rotate_row(cipher: EnvelopeCipher, update_row: UpdateRow[K], pk: K, raw: str) -> str:
    try:
        outcome = await cipher.rewrap(raw)
    except Exception as exc:
        status = rotation_status(str(exc))
        log.warning("rewrap failed (%s)", status)
        return status
    if not isinstance(outcome, Rewrapped):
        return "skipped"
    try:
        updated = await update_row(pk, raw, outcome.new_storage_string)
    except Exception as exc:
        log.warning("rewrap write failed: %s", type(exc).__name__)
        return "failed_write"
    # 0 rows: the row changed meanwhile and was re-sealed under the current KEK anyway.
    return "rewrapped" if updated == 1 else "skipped"
