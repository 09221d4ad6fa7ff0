"""What every read model shares: the event shape it folds, and the Projection interface (conventions §5)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from app.db.types import Conn

State = dict[str, Any]


def as_time(value: Any) -> datetime | None:
    """Mirror payloads carry RFC 3339 strings, event rows naive UTC datetimes: both become aware UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    text = str(value).replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def load_states(conn: Conn, sql: str, execution_ids: list[int]) -> dict[int, State]:
    """Stored per-execution states by `sql` (one `ANY($1)` parameter), times back as RFC 3339 like the fold's."""
    out: dict[int, State] = {}
    for r in await conn.fetch(sql, execution_ids):
        d = dict(r)
        d["started_at"], d["ended_at"] = iso(d["started_at"]), iso(d["ended_at"])
        out[int(r["execution_id"])] = d
    return out


def normalise(event: Any) -> dict[str, Any]:
    """The fields read models use, identical whether the event came from the mirror or from noetl.event."""
    meta = event.get("meta") if isinstance(event.get("meta"), Mapping) else {}
    cid = event.get("command_id")
    if cid is None and meta:
        cid = meta.get("command_id")
    return {
        "event_id": int(event["event_id"]),
        "execution_id": int(event["execution_id"]) if event.get("execution_id") is not None else None,
        "event_type": str(event.get("event_type") or ""),
        "node_name": event.get("node_name"),
        "status": event.get("status"),
        "result": event.get("result") if isinstance(event.get("result"), Mapping) else None,
        "meta": meta or {},
        "error": event.get("error"),
        "command_id": int(cid) if cid not in (None, "") else None,
        "worker_id": event.get("worker_id") or (meta or {}).get("worker_id"),
        "created_at": as_time(event.get("created_at")),
        "seq": int(event["seq"]) if event.get("seq") is not None else None,
    }


def error_of(event: Mapping[str, Any]) -> str | None:
    """An event's error text: the error column, else result.context.error."""
    err = event.get("error")
    if not err:
        ctx = (event.get("result") or {}).get("context")
        err = ctx.get("error") if isinstance(ctx, Mapping) else None
    if not err:
        return None
    if isinstance(err, Mapping):
        return str(err.get("message") or err)[:2000]
    return str(err)[:2000]


class Projection:
    """A read model: name, version, handled event types; folds events per execution."""

    name: ClassVar[str]
    version: ClassVar[int] = 1
    handles: ClassVar[frozenset[str] | None] = None  # None = every event type

    def wants(self, event: Mapping[str, Any]) -> bool:
        return self.handles is None or event.get("event_type") in self.handles

    def fold(self, state: State | None, event: Mapping[str, Any]) -> State:
        """Fold one normalised event (events arrive in event_id order) into the execution's state."""
        raise NotImplementedError

    async def load(self, conn: Conn, execution_ids: list[int]) -> dict[int, State]:
        """Stored states of these executions (each with `last_seq`, the insertion order it has folded up to)."""
        raise NotImplementedError

    async def save(self, conn: Conn, states: Mapping[int, State]) -> None:
        """Write these executions' states (replacing what was stored)."""
        raise NotImplementedError

    async def delete(self, conn: Conn, execution_ids: list[int] | None) -> None:
        """Forget these executions (None = everything) before a rebuild."""
        raise NotImplementedError

    async def after(self, conn: Conn, states: Mapping[int, State]) -> None:
        """Derived aggregates refreshed in the same transaction (optional)."""
        return None

    def fold_all(self, events: Iterable[Mapping[str, Any]]) -> State | None:
        state: State | None = None
        for ev in events:
            if self.wants(ev):
                state = self.fold(state, ev)
        return state
