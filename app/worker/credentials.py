"""Credential resolution on the worker (playbook-dsl.md §2.5, secrets.md §2.5).

Order: an allowlisted env var (NOETL_KEYCHAIN_ENV_VARS), then the server — sealed to this worker's
X25519 key when enabled, else the plaintext `include_data=true` route. Nothing is cached: a resolved
credential lives only as long as the tool that asked for it."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from app.config.env_aliases import allowlisted_env
from app.secrets.errors import SealError
from app.secrets.sealed import open_sealed
from app.worker.tools.base import ServerApi, ToolError

log = logging.getLogger(__name__)

# Statuses the server's credential routes answer when the alias cannot be resolved at all.
_NOT_FOUND = {404}


def http_status(exc: BaseException) -> int | None:
    """The HTTP status carried by a ServerApi error (`status` or `status_code`), if any."""
    for attr in ("status", "status_code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


class CredentialResolver:
    """Resolves credential aliases for one execution; implements the tools' Credentials protocol."""

    def __init__(
        self,
        api: ServerApi,
        *,
        execution_id: int,
        worker_id: str,
        env_allowlist: list[str],
        private_key: X25519PrivateKey | None,
        sealed: bool,
    ) -> None:
        self._api = api
        self._execution_id = execution_id
        self._worker_id = worker_id
        self._env_allowlist = frozenset(env_allowlist)
        self._private_key = private_key
        self._sealed = sealed and private_key is not None and bool(worker_id)
        if sealed and not self._sealed:
            log.warning("sealed credentials requested without a worker key or WORKER_ID; using plaintext")

    async def resolve(self, alias: str) -> Mapping[str, Any]:
        """`{"type", "data"}` for the alias; ToolError (code credential_not_found) when it is unknown."""
        if not isinstance(alias, str) or not alias.strip():
            raise ToolError("credential alias must be a non-empty string", code="credential_invalid")
        value = allowlisted_env(alias, self._env_allowlist)
        if value is not None:
            return {"type": "env", "name": alias, "data": {"value": value, "token": value}}
        body = await (self._fetch_sealed(alias) if self._sealed else self._fetch_plain(alias))
        return _to_credential(alias, body)

    async def _get(self, alias: str, path: str, params: dict[str, str]) -> Any:
        try:
            return await self._api.get_json(path, params)
        except ToolError:
            raise
        except Exception as exc:
            status = http_status(exc)
            if status in _NOT_FOUND:
                raise ToolError(f"credential '{alias}' not found", code="credential_not_found") from None
            reason = f"server answered {status}" if status is not None else type(exc).__name__
            # The server's error text is not echoed: it is about the alias, and never needed to act.
            raise ToolError(
                f"credential '{alias}' could not be fetched: {reason}", code="credential_error"
            ) from None

    async def _fetch_plain(self, alias: str) -> Any:
        params = {"include_data": "true", "execution_id": str(self._execution_id)}
        return await self._get(alias, f"/api/credentials/{quote(alias, safe='')}", params)

    async def _fetch_sealed(self, alias: str) -> Any:
        assert self._private_key is not None
        params = {"worker_id": self._worker_id, "execution_id": str(self._execution_id)}
        envelope = await self._get(alias, f"/api/credentials/{quote(alias, safe='')}/sealed", params)
        if not isinstance(envelope, Mapping):
            raise ToolError(f"credential '{alias}': sealed answer is not an envelope", code="sealed_open")
        try:
            plaintext = open_sealed(self._private_key, dict(envelope))
        except SealError as exc:
            raise ToolError(f"credential '{alias}': {exc}", code="sealed_open") from None
        try:
            return json.loads(plaintext)
        except ValueError:
            raise ToolError(
                f"credential '{alias}': sealed plaintext is not JSON", code="sealed_open"
            ) from None
        finally:
            del plaintext


def _to_credential(alias: str, body: Any) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise ToolError(f"credential '{alias}': unexpected answer from the server", code="credential_error")
    data = body.get("data")
    if not isinstance(data, Mapping):
        # A map-less keychain entry resolves to a bare string; the worker cannot consume it (secrets §2.5).
        raise ToolError(
            f"credential '{alias}' has no object data (a keychain entry without `map` cannot be used here)",
            code="credential_invalid",
        )
    return {"type": str(body.get("type") or ""), "name": body.get("name") or alias, "data": dict(data)}


# ------------------------------------------------------------------ type mapping (playbook-dsl.md §2.5)


def _first(data: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        value = data.get(name)
        if value is not None and value != "":
            return value
    return None


def postgres_params(credential: Mapping[str, Any]) -> dict[str, Any]:
    """asyncpg connect keywords from a postgres credential (db_host… or host…, or a dsn)."""
    data = credential.get("data") or {}
    dsn = _first(data, "dsn", "connection_string", "database_url", "url")
    value = data.get("value")
    if dsn is None and isinstance(value, str) and value.startswith(("postgres://", "postgresql://")):
        dsn = value  # an allowlisted env var holding a connection URL
    out: dict[str, Any] = {"dsn": dsn} if isinstance(dsn, str) else {}
    fields = {
        "host": ("db_host", "host", "hostname"),
        "port": ("db_port", "port"),
        "user": ("db_user", "user", "username"),
        "password": ("db_password", "password"),
        "database": ("db_name", "database", "dbname", "db"),
    }
    for key, names in fields.items():
        value = _first(data, *names)
        if value is not None:
            out[key] = value
    if "port" in out:
        try:
            out["port"] = int(out["port"])
        except (TypeError, ValueError):
            raise ToolError(
                "postgres credential: db_port must be an integer", code="credential_invalid"
            ) from None
    return out


def nats_params(credential: Mapping[str, Any]) -> dict[str, Any]:
    """nats-py connect keywords from a nats credential (nats_url, nats_user, nats_password, nats_token)."""
    data = credential.get("data") or {}
    out: dict[str, Any] = {}
    url = _first(data, "nats_url", "url", "servers")
    value = data.get("value")
    if url is None and isinstance(value, str) and value.startswith(("nats://", "tls://")):
        url = value  # an allowlisted env var holding the server URL
    if url is not None:
        out["servers"] = (
            url if isinstance(url, list) else [s.strip() for s in str(url).split(",") if s.strip()]
        )
    user = _first(data, "nats_user", "user", "username")
    password = _first(data, "nats_password", "password")
    token = _first(data, "nats_token", "token")
    if user is not None:
        out["user"] = str(user)
    if password is not None:
        out["password"] = str(password)
    if token is not None and user is None and token != url:
        out["token"] = str(token)
    return out


def secret_value(data: Mapping[str, Any], *names: str) -> str | None:
    """The first present field among `names` as a string (helper for header building)."""
    value = _first(data, *names)
    return None if value is None else str(value)
