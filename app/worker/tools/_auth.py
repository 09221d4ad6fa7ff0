"""The `auth:` forms of playbook-dsl.md §2.5 and the HTTP headers a resolved credential becomes."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from app.worker.credentials import secret_value
from app.worker.tools.base import Credentials, ToolError

HEADER_TYPES = frozenset({"bearer", "bearer_token", "basic", "api_key", "apikey"})
# A multi-credential map entry names its alias `key` (spec example); the structured single form uses
# `credential`, so that an inline `{type: api_key, key: …}` is not mistaken for an alias.
_ALIAS_KEYS = ("credential", "alias")
_MAP_ALIAS_KEYS = ("credential", "key", "alias")
_TOKEN_FIELDS = ("token", "access_token", "bearer_token", "id_token", "value")
_API_KEY_FIELDS = ("api_key", "apikey", "key", "value", "token")


def _alias_of(entry: Mapping[str, Any], keys: tuple[str, ...] = _ALIAS_KEYS) -> str | None:
    for k in keys:
        v = entry.get(k)
        if isinstance(v, str) and v.strip():
            return v.strip()
    return None


def _typed(cred: Mapping[str, Any], forced: Any) -> dict[str, Any]:
    out = dict(cred)
    if isinstance(forced, str) and forced:
        out["type"] = forced
    return out


async def _resolve_entry(
    entry: Mapping[str, Any], credentials: Credentials, keys: tuple[str, ...] = _ALIAS_KEYS
) -> dict[str, Any]:
    """One structured entry: `{type?, credential: alias}` (resolved) or inline fields."""
    alias = _alias_of(entry, keys)
    if alias is not None and entry.get("source", "credential") in ("credential", "keychain", "env", None):
        return _typed(await credentials.resolve(alias), entry.get("type"))
    data = {k: v for k, v in entry.items() if k not in ("type", "source")}
    return {"type": str(entry.get("type") or ""), "data": data}


def _is_multi(auth: Mapping[str, Any]) -> bool:
    return bool(auth) and "type" not in auth and all(isinstance(v, Mapping) for v in auth.values())


async def resolve_auth_map(auth: Any, credentials: Credentials) -> dict[str, dict[str, Any]]:
    """Every credential an `auth:` value names, keyed by its name (alias form: keyed by the alias)."""
    if auth is None or auth == "" or auth == {}:
        return {}
    if isinstance(auth, str):
        return {auth.strip(): dict(await credentials.resolve(auth.strip()))}
    if isinstance(auth, Mapping):
        if _is_multi(auth):
            return {
                str(name): await _resolve_entry(entry, credentials, _MAP_ALIAS_KEYS)
                for name, entry in auth.items()
            }
        return {str(_alias_of(auth) or "auth"): await _resolve_entry(auth, credentials)}
    raise ToolError("auth must be a credential alias or a mapping", code="credential_invalid")


async def resolve_auth(
    auth: Any, credentials: Credentials, *, want: str | None = None
) -> dict[str, Any] | None:
    """The one credential a tool uses: the alias, the structured entry, or the map entry of type `want`."""
    resolved = await resolve_auth_map(auth, credentials)
    if not resolved:
        return None
    if len(resolved) == 1:
        return next(iter(resolved.values()))
    if want is not None:
        for cred in resolved.values():
            if str(cred.get("type", "")).lower() == want:
                return cred
    names = ", ".join(sorted(resolved))
    raise ToolError(
        f"auth names several credentials ({names}); none is of type {want}", code="credential_invalid"
    )


def auth_headers(credential: Mapping[str, Any] | None) -> dict[str, str]:
    """HTTP headers for a bearer / basic / api_key credential (others are inferred from their fields)."""
    if not credential:
        return {}
    kind = str(credential.get("type") or "").lower()
    data = credential.get("data") or {}
    if not isinstance(data, Mapping):
        raise ToolError("credential data must be an object", code="credential_invalid")
    if kind not in HEADER_TYPES:
        # env / keychain / custom types: pick the form from the fields that are present.
        if secret_value(data, "username", "user") is not None and "password" in data:
            kind = "basic"
        elif secret_value(data, *_TOKEN_FIELDS[:-1]) is not None or kind == "env":
            kind = "bearer"
        elif secret_value(data, "api_key", "apikey") is not None:
            kind = "api_key"
        else:
            raise ToolError(
                f"a credential of type '{kind or 'unknown'}' cannot authenticate an http request",
                code="credential_invalid",
            )
    if kind in ("bearer", "bearer_token"):
        token = secret_value(data, *_TOKEN_FIELDS)
        if token is None:
            raise ToolError("bearer credential has no token", code="credential_invalid")
        return {"Authorization": f"Bearer {token}"}
    if kind == "basic":
        user = secret_value(data, "username", "user")
        password = secret_value(data, "password") or ""
        if user is None:
            raise ToolError("basic credential has no username", code="credential_invalid")
        raw = f"{user}:{password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}
    key = secret_value(data, *_API_KEY_FIELDS)
    if key is None:
        raise ToolError("api_key credential has no key", code="credential_invalid")
    header = secret_value(data, "header", "header_name") or "X-API-Key"
    prefix = secret_value(data, "prefix")
    return {header: f"{prefix} {key}" if prefix else key}
