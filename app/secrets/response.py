"""CredentialResponse JSON (secrets.md §3.1): the GET body and, byte for byte, the sealed plaintext."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from app.secrets.encoding import canonical_json, format_rfc3339
from app.secrets.resolver import CredentialRecord, Resolved

_MISSING: Any = object()


def _s(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def credential_response_json(
    *,
    id: int | str,
    name: str,
    type: str,
    created_at: datetime,
    updated_at: datetime,
    meta: Any = None,
    tags: list[str] | None = None,
    description: str | None = None,
    data: Any = _MISSING,
) -> str:
    """Compact JSON in record field order; free-form ``meta``/``data`` canonical (sorted keys)."""
    parts = [f'"id":{_s(str(id))}', f'"name":{_s(name)}', f'"type":{_s(type)}']
    if meta is not None:
        parts.append(f'"meta":{canonical_json(meta)}')
    if tags is not None:
        parts.append(f'"tags":{canonical_json(tags)}')
    if description is not None:
        parts.append(f'"description":{_s(description)}')
    if data is not _MISSING:
        parts.append(f'"data":{canonical_json(data)}')
    parts.append(f'"created_at":{_s(format_rfc3339(created_at))}')
    parts.append(f'"updated_at":{_s(format_rfc3339(updated_at))}')
    return "{" + ",".join(parts) + "}"


def response_for(resolved: Resolved, identifier: str, *, now: datetime | None = None) -> str:
    """The ``include_data=true`` body for a resolution (stored record, or the synthetic keychain record)."""
    record: CredentialRecord | None = resolved.record if resolved.source == "credential" else None
    if record is not None:
        return credential_response_json(
            id=record.id,
            name=record.name,
            type=record.type,
            meta=record.meta,
            tags=record.tags,
            description=record.description,
            data=resolved.data,
            created_at=record.created_at or now or datetime.now(UTC),
            updated_at=record.updated_at or now or datetime.now(UTC),
        )
    stamp = now or datetime.now(UTC)
    return credential_response_json(
        id="0",
        name=identifier,
        type="keychain",
        description="resolved from keychain provider",
        data=resolved.data,
        created_at=stamp,
        updated_at=stamp,
    )
