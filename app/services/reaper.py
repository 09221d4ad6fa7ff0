"""The command reaper (server-contract §12.8): re-publish commands a worker lost or never received."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from app.bootstrap import Deps

log = logging.getLogger(__name__)

CANDIDATES_SQL = """
SELECT c.execution_id, c.command_id, c.event_id, c.step_name, c.status, c.meta, o.subject, o.payload
  FROM command c
  JOIN execution x ON x.execution_id = c.execution_id AND x.status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')
  JOIN outbox o ON o.event_id = c.event_id AND o.kind = 'command'
  LEFT JOIN runtime r ON r.kind = 'worker_pool' AND r.name = c.worker_id
 WHERE (
        (c.status = 'PENDING' AND c.updated_at < now() - make_interval(secs => $1))
     OR (c.status IN ('CLAIMED', 'RUNNING') AND (
            r.name IS NULL OR r.status <> 'ready' OR r.heartbeat < now() - make_interval(secs => $2)
            OR COALESCE(c.claimed_at, c.started_at, c.updated_at) < now() - make_interval(secs => $3)))
   )
   AND o.status = 'PUBLISHED'
   AND COALESCE((c.meta->>'next_republish_at')::timestamptz, '-infinity') <= now()
 ORDER BY c.updated_at
 LIMIT $4
"""

BUMP_SQL = """
UPDATE command SET meta = $3, updated_at = CASE WHEN status = 'PENDING' THEN now() ELSE updated_at END
 WHERE execution_id = $1 AND command_id = $2
"""


def republish_delay(n: int) -> int:
    """60 s, 120 s, 240 s … capped at 900 s between re-publishes of one command."""
    return int(min(900, 60 * 2 ** max(0, n - 1)))


async def run_once(deps: Deps) -> int:
    """One bounded cycle; returns how many commands were re-published."""
    s = deps.settings.server
    rows = await deps.pool.fetch(
        CANDIDATES_SQL,
        float(s.reaper_pending_retry_seconds),
        float(s.reaper_worker_stale_seconds),
        float(s.healthy_worker_hard_timeout_seconds),
        s.reaper_max_per_run,
    )
    count = 0
    bus = deps.bus
    if bus is None or not bus.connected:
        return 0
    for r in rows:
        meta: dict[str, Any] = dict(r["meta"] or {})
        n = int(meta.get("republish_count") or 0) + 1
        payload = json.dumps(r["payload"] or {}, separators=(",", ":"), sort_keys=True).encode()
        try:
            # A fresh Nats-Msg-Id so the stream's duplicate window does not swallow the re-publish.
            await bus.publish(r["subject"], payload, f"{r['event_id']}:r{n}")
        except Exception as exc:
            log.warning(
                "reaper publish failed", extra={"command_id": r["command_id"], "error": str(exc)[:200]}
            )
            continue
        meta["republish_count"] = n
        meta["next_republish_at"] = (datetime.now(UTC) + timedelta(seconds=republish_delay(n))).isoformat()
        await deps.pool.execute(BUMP_SQL, r["execution_id"], r["command_id"], meta)
        count += 1
        deps.metrics.reaper_republished.inc()
    if count:
        log.info("commands re-published", extra={"count": count})
    return count
