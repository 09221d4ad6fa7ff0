"""Idempotency-Key replays of `POST /api/events/batch`: the original answer of a batch already stored."""

from __future__ import annotations

from typing import Any

from app.bootstrap import Deps


async def find_batch(deps: Deps, execution_id: int, key: str) -> dict[str, Any] | None:
    """The original answer of a batch already stored under this Idempotency-Key, else None."""
    first = await deps.pool.fetchrow(
        "SELECT meta->>'batch_request_id' AS request_id FROM event WHERE execution_id = $1 "
        "AND meta->>'idempotency_key' = $2 LIMIT 1",
        execution_id,
        key,
    )
    if first is None:
        return None
    ids = await deps.pool.fetch(
        "SELECT event_id FROM event WHERE execution_id = $1 AND meta->>'batch_request_id' = $2 ORDER BY seq",
        execution_id,
        first["request_id"],
    )
    return {
        "status": "ok",
        "request_id": first["request_id"],
        "event_ids": [r["event_id"] for r in ids],
        "commands_generated": 0,
        "duplicate": True,
        "idempotency_key": key,
    }
