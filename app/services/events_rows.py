"""Stored event records as the mappings the pure engine folds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from app.timefmt import rfc3339


def row_for_engine(rec: asyncpg.Record) -> dict[str, Any]:
    """A plain dict with RFC 3339 created_at."""
    row = dict(rec)
    created = row.get("created_at")
    if isinstance(created, datetime):
        row["created_at"] = rfc3339(created)
    return row
