"""The in-memory execution → clients index that replaces a K/V listing per forwarded event."""

from __future__ import annotations

import json
import time

from app.gateway.request_index import RequestIndex


def _entry(eid: str, client: str, created: float | None = None) -> bytes:
    return json.dumps(
        {"execution_id": eid, "client_id": client, "created_at": created or int(time.time())}
    ).encode()


def test_puts_deletes_and_moves() -> None:
    idx = RequestIndex(ttl_secs=60)
    idx.apply("req.r1", _entry("7", "alice"), deleted=False)
    idx.apply("req.r2", _entry("7", "bob"), deleted=False)
    idx.apply("req.r3", _entry("8", "alice"), deleted=False)
    idx.apply("exec.7.r1", b"r1", deleted=False)  # index keys are ignored: req.<id> carries everything
    assert sorted(idx.clients("7")) == ["alice", "bob"] and idx.clients("8") == ["alice"]
    idx.apply("req.r1", None, deleted=True)
    assert idx.clients("7") == ["bob"]
    idx.apply("req.r2", _entry("9", "bob"), deleted=False)  # a rewrite moves the request
    assert idx.clients("7") == [] and idx.clients("9") == ["bob"]
    idx.apply("req.r3", b"not json", deleted=False)
    assert idx.clients("8") == ["alice"] and len(idx) == 2
    idx.reset()
    assert not idx.ready and len(idx) == 0 and idx.clients("9") == []


def test_expired_requests_age_out() -> None:
    idx = RequestIndex(ttl_secs=60)
    idx.apply("req.old", _entry("7", "alice", created=time.time() - 120), deleted=False)
    idx.apply("req.new", _entry("7", "bob"), deleted=False)
    assert idx.clients("7") == ["bob"] and len(idx) == 1


def test_incomplete_entries_are_not_indexed() -> None:
    idx = RequestIndex(ttl_secs=60)
    idx.put("r", {"execution_id": "", "client_id": "c"})
    idx.put("s", {"execution_id": "1"})
    assert len(idx) == 0
