"""The SSE connection registry (gateway.md §10.6): one bounded queue per connection, removal by identity."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

QUEUE_SIZE = 1000


@dataclass(eq=False)
class Frame:
    """One SSE frame: event name, JSON-RPC payload and an optional event id."""

    event: str
    data: dict[str, Any]
    id: str | None = None


@dataclass(eq=False)
class Connection:
    """One open /events stream."""

    client_id: str
    session_hash: str
    queue: asyncio.Queue[Frame | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    sent_ids: set[str] = field(default_factory=set)
    closed: bool = False

    def send(self, frame: Frame) -> bool:
        """Enqueue; on overflow close the stream (the client reconnects and sees pendingRequests)."""
        if self.closed:
            return False
        if frame.id is not None:
            if frame.id in self.sent_ids:
                return True  # never twice on one stream
            self.sent_ids.add(frame.id)
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.close()
            return False
        return True

    def close(self) -> None:
        """Ask the writer to end the stream."""
        if not self.closed:
            self.closed = True
            try:
                self.queue.put_nowait(None)
            except asyncio.QueueFull:
                pass


class Registry:
    """Connections by client id, counted by session."""

    def __init__(self) -> None:
        self.by_client: dict[str, Connection] = {}
        self.per_session: dict[str, int] = {}

    def open_count(self, session_hash: str) -> int:
        """Open streams of one session."""
        return self.per_session.get(session_hash, 0)

    def add(self, conn: Connection) -> None:
        """Register, replacing (and closing) an older stream with the same client id."""
        old = self.by_client.get(conn.client_id)
        if old is not None:
            old.close()
        self.by_client[conn.client_id] = conn
        self.per_session[conn.session_hash] = self.per_session.get(conn.session_hash, 0) + 1

    def remove(self, conn: Connection) -> None:
        """Unregister only if the entry still refers to this connection."""
        if self.by_client.get(conn.client_id) is conn:
            del self.by_client[conn.client_id]
        n = self.per_session.get(conn.session_hash, 1) - 1
        if n <= 0:
            self.per_session.pop(conn.session_hash, None)
        else:
            self.per_session[conn.session_hash] = n

    def send(self, client_id: str, frame: Frame) -> bool:
        """Deliver to a locally connected client; False when it is not here."""
        conn = self.by_client.get(client_id)
        return conn.send(frame) if conn is not None and not conn.closed else False
