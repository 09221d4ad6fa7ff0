"""Event ingestion (server-contract §6): normalise, de-duplicate, project commands, trigger orchestration."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from app.bootstrap import Deps
from app.db.types import Conn
from app.errors import Conflict, NotFound
from app.ids import id_time_ms
from app.services.eventlog import (
    ERROR_STATUSES,
    TRIGGER_TYPES,
    canonical_status,
    mirror_subject,
    naive_utc,
)
from app.services.locks import locked_transaction
from app.store.rows import ingest_events
from app.timefmt import parse_ts, rfc3339

LIFECYCLE = frozenset(
    {
        "command.issued",
        "command.claimed",
        "command.started",
        "command.completed",
        "command.failed",
        "command.cancelled",
    }
)
MAX_FUTURE_MS = 5 * 60 * 1000
TERMINAL_EXECUTION = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
_FINAL = {"command.completed": "COMPLETED", "command.failed": "FAILED", "command.cancelled": "CANCELLED"}

FIRST_EVENT_CATALOG_SQL = "SELECT catalog_id FROM event WHERE execution_id = $1 ORDER BY event_id LIMIT 1"
LEGACY_COMMAND_SQL = "SELECT command_id FROM command WHERE execution_id = $1 AND event_id = $2 LIMIT 1"

# The execution row and, in the same read, the stored lifecycle events matching the (event_type,
# command_id) keys of the incoming ones ($2, $3 in pairs), for every key at once. Always one row;
# catalog_id is NULL when the execution row does not exist.
_DUPS = """(SELECT jsonb_agg(jsonb_build_array(k.t, k.c, d.event_id, d.worker_id))
          FROM unnest($2::text[], $3::bigint[]) AS k(t, c)
          CROSS JOIN LATERAL (SELECT event_id, worker_id FROM event
                               WHERE execution_id = $1 AND event_type = k.t AND command_id = k.c LIMIT 1) d)"""
LOAD_SQL = f"""
SELECT x.catalog_id, x.status, x.parent_execution_id, {_DUPS} AS dups
  FROM (SELECT 1) AS one LEFT JOIN execution x ON x.execution_id = $1
"""
LOAD_STATE_SQL = f"""
SELECT x.catalog_id, x.status, x.state, x.state_seq, x.parent_execution_id, {_DUPS} AS dups
  FROM (SELECT 1) AS one LEFT JOIN execution x ON x.execution_id = $1
"""


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


async def _command_id(conn: Conn, execution_id: int, meta: dict[str, Any], payload: Any) -> int | None:
    """meta.command_id or payload.command_id: a number, a digit string or '<eid>:<step>:<event_id>[:i<n>]'."""
    raw = meta.get("command_id")
    if raw is None and isinstance(payload, dict):
        raw = payload.get("command_id")
    n = _int(raw)
    if n is not None:
        return n
    if isinstance(raw, str) and raw.count(":") >= 2:
        parts = raw.split(":")
        ev = _int(parts[2])
        if ev is not None:
            found = await conn.fetchval(LEGACY_COMMAND_SQL, execution_id, ev)
            return int(found) if found is not None else None
    return None


def _collapsible(updates: list[dict[str, Any]]) -> bool:
    """True when, per command, only touches precede its last update and that one is a touch or a final."""
    kinds: dict[int, list[str]] = {}
    for u in updates:
        kinds.setdefault(u["command_id"], []).append(u["kind"])
    return all(
        len(ks) == 1 or (all(k == "touch" for k in ks[:-1]) and ks[-1] in ("touch", "final"))
        for ks in kinds.values()
    )


def _error_text(payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return None
    err = payload.get("error")
    if err is None and isinstance(payload.get("result"), dict):
        err = payload["result"].get("error")
    if err is None:
        return None
    if isinstance(err, dict):
        return str(err.get("message") or err)
    return str(err)


def effective_type(event_type: str, status: str | None, payload: Any) -> str:
    """A command.completed reporting an error status is a command.failed for orchestration."""
    if event_type != "command.completed":
        return event_type
    reported = status or (payload.get("status") if isinstance(payload, dict) else None)
    if isinstance(reported, str) and reported.strip().lower() in ERROR_STATUSES:
        return "command.failed"
    return event_type


class Ingest:
    """One ingestion unit of work inside an open, execution-locked transaction."""

    def __init__(self, conn: Conn, deps: Deps, execution_id: int, now: datetime) -> None:
        self.conn = conn
        self.deps = deps
        self.execution_id = execution_id
        self.now = now
        self.catalog_id: int | None = None
        self.status: str | None = None
        self.triggers = 0
        self.batch_keys: dict[tuple[str, int], int] = {}
        self.execution_row: Any = None
        # (event_type, command_id) -> (event_id, worker_id) of lifecycle events already stored
        self.stored: dict[tuple[str, int], tuple[int, str | None]] = {}
        # with a trigger coming: every event since the execution's state_seq, as the engine folds them
        self.pass_rows: list[dict[str, Any]] | None = None

    async def load(
        self,
        catalog_hint: int | None = None,
        with_state: bool = False,
        keys: list[tuple[str, int]] | None = None,
    ) -> None:
        """Resolve the execution's catalog id (unknown executions are 404) and read the stored duplicates.

        With `with_state` the orchestration row is read in the same query (a trigger is coming); `keys`
        are the (event_type, command_id) pairs whose stored events prepare() de-duplicates against."""
        pairs = keys or []
        row = await self.conn.fetchrow(
            LOAD_STATE_SQL if with_state else LOAD_SQL,
            self.execution_id,
            [t for t, _ in pairs],
            [c for _, c in pairs],
        )
        assert row is not None  # the query always yields one row
        for t, c, ev, worker in row["dups"] or []:
            self.stored[(t, int(c))] = (int(ev), worker)
        if row["catalog_id"] is not None:
            self.catalog_id, self.status = row["catalog_id"], row["status"]
            self.execution_row = row if with_state else None
            return
        cid = await self.conn.fetchval(FIRST_EVENT_CATALOG_SQL, self.execution_id)
        if cid is None:
            cid = await self.conn.fetchval(
                "SELECT catalog_id FROM command WHERE execution_id = $1 LIMIT 1", self.execution_id
            )
        if cid is None and catalog_hint is not None:
            exists = await self.conn.fetchval("SELECT 1 FROM catalog WHERE catalog_id = $1", catalog_hint)
            cid = catalog_hint if exists else None
        if cid is None:
            raise NotFound(f"execution not found: {self.execution_id}")
        self.catalog_id = int(cid)

    async def command_ids(self, events: list[dict[str, Any]]) -> list[int | None]:
        """Each event's command id (a database read only for the legacy '<eid>:<step>:<event_id>' form)."""
        return [
            await _command_id(self.conn, self.execution_id, dict(ev.get("meta") or {}), ev.get("payload"))
            for ev in events
        ]

    def _event_id(self, raw: Any) -> int:
        n = _int(raw)
        now_ms = int(self.now.timestamp() * 1000)
        if n is not None and 0 < n < 2**63 and id_time_ms(n) <= now_ms + MAX_FUTURE_MS:
            return n
        return self.deps.ids.next_id()

    def prepare(
        self,
        ev: dict[str, Any],
        command_id: int | None,
        worker_id: str | None,
        actionable_default: bool,
        extra_meta: dict[str, Any] | None = None,
    ) -> dict[str, Any] | int:
        """The row to insert, or the id of an already stored duplicate (0: duplicate claim, same worker)."""
        event_type = ev["event_type"]
        payload = ev.get("payload")
        meta = dict(ev.get("meta") or {})
        step = ev.get("step")
        producer_status = ev.get("status")
        if (
            producer_status is None
            and isinstance(payload, dict)
            and isinstance(payload.get("status"), str)
            and event_type in ("command.completed", "command.failed", "call.done", "call.error", "step.exit")
        ):
            producer_status = payload["status"]
        worker = ev.get("worker_id") or worker_id
        if command_id is not None and event_type in LIFECYCLE:
            key = (event_type, command_id)
            if key in self.batch_keys:
                return self.batch_keys[key]
            dup = self.stored.get(key)
            if dup is not None:
                if event_type == "command.claimed":
                    if dup[1] == worker:
                        return 0
                    raise Conflict(f"command {command_id} is claimed by another worker", code="active_claim")
                return dup[0]
        status = canonical_status(event_type, producer_status)
        meta.setdefault("actionable", ev.get("actionable", actionable_default))
        meta.setdefault("informative", ev.get("informative", True))
        if worker:
            meta["worker_id"] = worker
        if producer_status is not None:
            meta["producer_status"] = producer_status
        if command_id is not None:
            meta["command_id"] = command_id
        if extra_meta:
            meta.update(extra_meta)
        result: dict[str, Any] = {"status": status}
        if isinstance(payload, dict):
            result["context"] = payload
        ref = ev.get("result_kind")
        if ref == "ref" and ev.get("result_uri"):
            result["reference"] = {"store_tier": "result_store", "logical_uri": ev["result_uri"]}
        elif ref == "refs" and ev.get("event_ids"):
            result["reference"] = {"event_ids": ev["event_ids"], "total_parts": len(ev["event_ids"])}
        created = parse_ts(ev.get("created_at")) if ev.get("created_at") else None
        event_id = self._event_id(ev.get("event_id"))
        if command_id is not None and event_type in LIFECYCLE:
            self.batch_keys[(event_type, command_id)] = event_id
        return {
            "execution_id": self.execution_id,
            "catalog_id": self.catalog_id,
            "event_id": event_id,
            "created_at": naive_utc(created or self.now),
            "event_type": event_type,
            "node_id": step,
            "node_name": step,
            "status": status,
            "result": result,
            "meta": meta,
            "error": _error_text(payload) if status == "FAILED" else None,
            "worker_id": worker,
            "command_id": command_id,
            # not columns: kept for the command projection after the insert
            "_payload": payload,
            "_producer_status": producer_status,
        }

    async def store(self, rows: list[dict[str, Any]]) -> set[int]:
        """Insert the prepared rows, their mirror rows and the command projection in one statement.

        Counts triggers among the new rows; with a trigger expected (execution_row loaded) the same
        statement returns the rows the orchestration pass folds (pass_rows). Returns the new event ids."""
        clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
        updates = [self._command_update(r, i) for i, r in enumerate(rows) if r["command_id"] is not None]
        # The one-statement projection applies the last new row per command; when that differs from
        # applying them in order (see rows.COMMAND_UPDATE_COLUMNS) they are projected one by one.
        single = _collapsible(updates)
        if not single:
            updates = []
        ex = self.execution_row
        # A terminal execution is never orchestrated: no need to read its events back.
        since = ex["state_seq"] if ex is not None and ex["status"] not in TERMINAL_EXECUTION else None
        settings = self.deps.settings
        subject = mirror_subject(settings, clean[0]) if settings.server.event_mirror_enabled else None
        recs = await ingest_events(
            self.conn, self.execution_id, clean, subject, rfc3339(self.now) or "", updates, since
        )
        inserted = {r["event_id"] for r in recs if r["new"]}
        if since is not None:
            self.pass_rows = [{k: v for k, v in r.items() if k != "new"} for r in recs]
        for r in rows:
            if r["event_id"] not in inserted:
                continue
            self.deps.metrics.events_ingested.labels(r["event_type"], r["status"]).inc()
            if r["command_id"] is not None and not single:
                await self._project_command(
                    r["event_type"],
                    r["command_id"],
                    r["event_id"],
                    r["status"],
                    r["_payload"],
                    r["worker_id"],
                    r["_producer_status"],
                )
            if effective_type(r["event_type"], r["_producer_status"], r["_payload"]) in TRIGGER_TYPES:
                self.triggers += 1
        return inserted

    @staticmethod
    def _command_update(r: dict[str, Any], ord_: int) -> dict[str, Any]:
        """The recordset row of rows.ingest_events' command UPDATE: _project_command's effect as data."""
        event_type, payload = r["event_type"], r["_payload"]
        u: dict[str, Any] = {
            "command_id": r["command_id"],
            "event_id": r["event_id"],
            "ord": ord_,
            "kind": "touch",
        }
        if event_type == "command.started":
            u["kind"] = "started"
        elif event_type in _FINAL:
            final = _FINAL[event_type]
            if effective_type(event_type, r["_producer_status"], payload) == "command.failed":
                final = "FAILED"
            res = payload.get("result") if isinstance(payload, dict) else None
            u.update(
                kind="final",
                final=final,
                result=res if isinstance(res, dict) else None,
                error=_error_text(payload) if final == "FAILED" else None,
            )
        elif event_type == "command.claimed":
            u.update(kind="claimed", worker_id=r["worker_id"])
        return u

    async def _project_command(
        self,
        event_type: str,
        command_id: int,
        event_id: int,
        status: str,
        payload: Any,
        worker: str | None,
        producer_status: str | None,
    ) -> None:
        c = self.conn
        eid = self.execution_id
        if event_type == "command.started":
            await c.execute(
                "UPDATE command SET status = 'RUNNING', started_at = COALESCE(started_at, now()), "
                "latest_event_id = $3, updated_at = now() WHERE execution_id = $1 AND command_id = $2 "
                "AND status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')",
                eid,
                command_id,
                event_id,
            )
        elif event_type in ("command.completed", "command.failed", "command.cancelled"):
            final = {
                "command.completed": "COMPLETED",
                "command.failed": "FAILED",
                "command.cancelled": "CANCELLED",
            }[event_type]
            if effective_type(event_type, producer_status, payload) == "command.failed":
                final = "FAILED"
            res = payload.get("result") if isinstance(payload, dict) else None
            await c.execute(
                "UPDATE command SET status = $3, completed_at = now(), result = $4, error = $5, "
                "latest_event_id = $6, updated_at = now() WHERE execution_id = $1 AND command_id = $2",
                eid,
                command_id,
                final,
                res if isinstance(res, dict) else None,
                _error_text(payload) if final == "FAILED" else None,
                event_id,
            )
        elif event_type == "command.claimed":
            await c.execute(
                "UPDATE command SET status = 'CLAIMED', worker_id = $3, claimed_at = now(), latest_event_id = $4, "
                "updated_at = now() WHERE execution_id = $1 AND command_id = $2 AND status = 'PENDING'",
                eid,
                command_id,
                worker,
                event_id,
            )
        else:
            await c.execute(
                "UPDATE command SET latest_event_id = $3, updated_at = now() "
                "WHERE execution_id = $1 AND command_id = $2",
                eid,
                command_id,
                event_id,
            )


async def ingest(
    deps: Deps,
    execution_id: int,
    events: list[dict[str, Any]],
    *,
    worker_id: str | None = None,
    actionable_default: bool = True,
    catalog_hint: int | None = None,
    extra_meta: dict[str, Any] | None = None,
) -> tuple[list[int], int]:
    """Store events (one transaction, execution-locked) and run the orchestrator on triggers.

    Returns (event ids, commands generated)."""
    from app.services.events_one import ingest_one  # both build on Ingest below
    from app.services.orchestration import orchestrate_locked

    started = time.perf_counter()
    now = datetime.now(UTC)
    expects_trigger = any(
        effective_type(str(ev.get("event_type")), ev.get("status"), ev.get("payload")) in TRIGGER_TYPES
        for ev in events
    )
    if len(events) == 1 and not expects_trigger:
        done = await ingest_one(deps, execution_id, events[0], worker_id, actionable_default, extra_meta, now)
        if done is not None:
            deps.signal_outbox()
            deps.metrics.event_ingest_duration.observe(time.perf_counter() - started)
            return done
    async with deps.pool.acquire() as conn, locked_transaction(conn, execution_id):
        unit = Ingest(conn, deps, execution_id, now)
        cids = await unit.command_ids(events)
        keys = {
            (str(ev["event_type"]), c)
            for ev, c in zip(events, cids, strict=True)
            if c is not None and ev["event_type"] in LIFECYCLE
        }
        await unit.load(catalog_hint, with_state=expects_trigger, keys=sorted(keys))
        prepared = [
            unit.prepare(ev, c, worker_id, actionable_default, extra_meta)
            for ev, c in zip(events, cids, strict=True)
        ]
        rows = [p for p in prepared if isinstance(p, dict)]
        if rows:
            await unit.store(rows)
        ids = [p["event_id"] if isinstance(p, dict) else p for p in prepared]
        generated = 0
        if unit.triggers:
            generated = await orchestrate_locked(
                conn, deps, execution_id, now, prefetched=unit.execution_row, new_rows=unit.pass_rows
            )
    deps.signal_outbox()
    deps.metrics.event_ingest_duration.observe(time.perf_counter() - started)
    return ids, generated
