"""Provider interface, values and shared HTTP plumbing (secrets.md §5.1)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from app.secrets.encoding import loads
from app.secrets.errors import SecretConfigError

DEFAULT_TIMEOUT_SECS = 10.0


@dataclass(frozen=True)
class SecretRef:
    """What the resolver asks a provider for: the rendered reference and the entry's region."""

    name: str
    region: str | None = None
    project: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class SecretValue:
    """A fetched secret; the value is excluded from the repr."""

    value: str = field(repr=False)
    version: str | None = None
    expires_at: datetime | None = None


class SecretProvider(Protocol):
    """A backend that turns a reference into a value."""

    provider_id: str

    async def fetch(self, ref: SecretRef) -> SecretValue: ...

    async def close(self) -> None: ...


def ssl_context_with_ca(ca_file: str, *, required: bool, what: str) -> ssl.SSLContext | None:
    """System roots plus ``ca_file``; unreadable → None unless ``required``; bad PEM → error."""
    if not ca_file:
        return None
    try:
        pem = Path(ca_file).read_text()
    except OSError:
        if required:
            raise SecretConfigError(f"{what}: CA file '{ca_file}' is not readable") from None
        return None
    ctx = ssl.create_default_context()
    try:
        ctx.load_verify_locations(cadata=pem)
    except (ssl.SSLError, ValueError):
        raise SecretConfigError(f"{what}: CA file '{ca_file}' is not a valid PEM bundle") from None
    return ctx


def read_token_file(path: str, what: str) -> str:
    """Read and trim a token file at fetch time (projected tokens rotate)."""
    try:
        return Path(path).read_text().strip()
    except OSError:
        raise SecretConfigError(f"{what}: cannot read token file '{path}'") from None


class HttpProvider:
    """One aiohttp session per provider instance, created lazily inside the running loop."""

    provider_id = "base"

    def __init__(
        self, *, ssl_ctx: ssl.SSLContext | None = None, timeout: float = DEFAULT_TIMEOUT_SECS
    ) -> None:
        self._ssl_ctx = ssl_ctx
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def http(self) -> aiohttp.ClientSession:
        """The provider's session (created on first use)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl_ctx) if self._ssl_ctx else None
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        """Close the session."""
        if self._session is not None and not self._session.closed:
            await self._session.close()


def parse_json_body(text: str, what: str, exc_cls: type[Exception]) -> Any:
    """Parse a provider response body; the error never echoes the body (it may hold the secret)."""
    try:
        return loads(text)
    except ValueError:
        raise exc_cls(f"{what}: response is not valid JSON") from None


def json_kind(value: Any) -> str:
    """JSON type name for error messages (never the value)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def select_key(
    data: dict[str, Any],
    key: str | None,
    secret: str,
    what: str,
    fetch_exc: type[Exception],
    key_sep: str = "/",
) -> tuple[str, Any]:
    """Pick ``key`` or, when None, the only key; ambiguous → 500 listing the sorted keys."""
    if key is not None:
        if key not in data:
            raise fetch_exc(f"{what}: secret '{secret}' has no key '{key}'")
        return key, data[key]
    if not data:
        raise fetch_exc(f"{what}: secret '{secret}' has no data")
    if len(data) > 1:
        keys = ", ".join(sorted(data))
        raise SecretConfigError(
            f"{what}: Secret '{secret}' has {len(data)} keys ({keys}); "
            f"reference a specific one as '{secret}{key_sep}<key>'"
        )
    only = next(iter(data))
    return only, data[only]
