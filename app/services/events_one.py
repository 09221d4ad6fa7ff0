"""A single non-triggering event (command.started, call.done, step.*) in one round trip: schema/0040's
`ingest_event()` takes the execution lock, de-duplicates, inserts, mirrors and projects the command."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.bootstrap import Deps
from app.errors import Conflict
from app.services.eventlog import mirror_subject
from app.services.events import LIFECYCLE, Ingest, _int
from app.timefmt import rfc3339

INGEST_ONE_SQL = "SELECT outcome, event_id, worker_id FROM ingest_event($1, $2, $3, $4, $5, $6, $7)"


async def ingest_one(
    deps: Deps,
    execution_id: int,
    ev: dict[str, Any],
    worker_id: str | None,
    actionable_default: bool,
    extra_meta: dict[str, Any] | None,
    now: datetime,
) -> tuple[list[int], int] | None:
    """One non-triggering event in one round trip (schema/0040 ingest_event: lock, load, de-duplicate,
    insert, mirror, command projection); None when the general path must handle it (no execution row,
    or a legacy command id that needs a lookup) — nothing is written then."""
    meta = ev.get("meta") or {}
    payload = ev.get("payload")
    raw = meta.get("command_id")
    if raw is None and isinstance(payload, dict):
        raw = payload.get("command_id")
    cid = _int(raw)
    if cid is None and isinstance(raw, str) and raw.count(":") >= 2:
        return None
    async with deps.pool.acquire() as conn:
        unit = Ingest(conn, deps, execution_id, now)  # nothing stored yet: prepare() never de-duplicates
        row = unit.prepare(ev, cid, worker_id, actionable_default, extra_meta)
        assert isinstance(row, dict)
        clean = {k: v for k, v in row.items() if not k.startswith("_") and k != "catalog_id"}
        event_type = row["event_type"]
        lifecycle = cid is not None and event_type in LIFECYCLE
        settings = deps.settings
        rec = await conn.fetchrow(
            INGEST_ONE_SQL,
            execution_id,
            clean,
            event_type if lifecycle else None,
            cid if lifecycle else None,
            mirror_subject(settings, clean) if settings.server.event_mirror_enabled else None,
            rfc3339(now) or "",
            Ingest._command_update(row, 0) if cid is not None else None,
        )
    assert rec is not None
    outcome = rec["outcome"]
    if outcome == "missing":
        return None
    if outcome == "duplicate":
        if event_type == "command.claimed":
            if rec["worker_id"] == row["worker_id"]:
                return [0], 0
            raise Conflict(f"command {cid} is claimed by another worker", code="active_claim")
        return [int(rec["event_id"])], 0
    if outcome == "inserted":
        deps.metrics.events_ingested.labels(event_type, row["status"]).inc()
    return [row["event_id"]], 0
