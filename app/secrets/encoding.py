"""Strict canonical base64 and canonical JSON (secrets.md §0)."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any


class Base64Error(ValueError):
    """Input is not strict, canonical, padded standard base64."""


def b64encode(data: bytes) -> str:
    """Standard padded base64 text."""
    return base64.b64encode(data).decode("ascii")


def b64decode_strict(text: str) -> bytes:
    """Decode standard padded base64, rejecting whitespace, url-safe chars and non-canonical input."""
    if not isinstance(text, str):
        raise Base64Error("expected a string")
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raise Base64Error("invalid character") from None
    if len(raw) % 4 != 0:
        raise Base64Error("invalid length")
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise Base64Error("invalid symbol") from None
    # b64decode(validate=True) tolerates non-zero trailing bits; re-encoding exposes them.
    if base64.b64encode(data) != raw:
        raise Base64Error("non-canonical encoding")
    return data


def canonical_json(value: Any) -> str:
    """Compact JSON with byte-order sorted keys and raw UTF-8 (free-form values)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid number {name}")


# json.loads with any keyword builds a new JSONDecoder per call (about 2/3 of a small parse); this one
# is built once and is stateless, so sharing it is safe.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def loads(text: str | bytes) -> Any:
    """Parse JSON, rejecting NaN/Infinity (same inputs and errors as ``json.loads``)."""
    if isinstance(text, bytes | bytearray):
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    elif not isinstance(text, str):
        raise TypeError(f"the JSON object must be str or bytes, not {type(text).__name__}")
    elif text.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    return _DECODER.decode(text)


def format_rfc3339(dt: datetime) -> str:
    """RFC 3339 UTC with ``Z``; fraction omitted when zero, else the shortest of 3/6 digits."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    dt = dt.astimezone(UTC)
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    us = dt.microsecond
    if us == 0:
        return base + "Z"
    if us % 1000 == 0:
        return f"{base}.{us // 1000:03d}Z"
    return f"{base}.{us:06d}Z"
