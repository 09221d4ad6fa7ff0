"""Helpers shared by the dynamic (expiring) providers: form encoding and timestamp parsing."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import quote

from app.secrets.errors import SecretConfigError

_FRACTION = re.compile(r"\.(\d+)")


def form_encode(pairs: list[tuple[str, str]]) -> str:
    """``k=v&…`` keeping only ``A-Za-z0-9-_.~`` unescaped (``%XX`` upper case)."""
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)


def parse_rfc3339(text: str, what: str) -> datetime:
    """Parse an RFC 3339 timestamp (fractions beyond µs truncated) to an aware UTC datetime."""
    t = text.strip()
    t = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), t, count=1)
    if t.endswith(("Z", "z")):
        t = t[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        raise SecretConfigError(f"{what}: unparseable timestamp") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)
