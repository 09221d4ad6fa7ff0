"""RFC 3339 UTC timestamps with the shortest exact fraction (server-contract §2)."""

from __future__ import annotations

from datetime import UTC, datetime


def to_utc(value: datetime) -> datetime:
    """Naive datetimes are UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def rfc3339(value: datetime | None) -> str | None:
    """Format as YYYY-MM-DDTHH:MM:SS[.fff|.ffffff]Z."""
    if value is None:
        return None
    v = to_utc(value)
    base = v.strftime("%Y-%m-%dT%H:%M:%S")
    us = v.microsecond
    if us == 0:
        return base + "Z"
    if us % 1000 == 0:
        return f"{base}.{us // 1000:03d}Z"
    return f"{base}.{us:06d}Z"


def parse_ts(value: str | None) -> datetime | None:
    """Parse RFC 3339 or naive ISO text; naive means UTC."""
    if not value:
        return None
    text = value.strip()
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    return to_utc(datetime.fromisoformat(text))


def duration_human(seconds: float | None) -> str:
    """'1h 2m 3s' style, seconds rounded, minimum '0s'."""
    total = round(seconds or 0)
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    parts = []
    if h:
        parts.append(f"{h}h")
    if m:
        parts.append(f"{m}m")
    if s or not parts:
        parts.append(f"{s}s")
    return " ".join(parts)
