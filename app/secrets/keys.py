"""Key managers that wrap/unwrap data keys: LocalDevKms and GcpKms (secrets.md §1.1, §1.5)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from app.config.secrets import ProviderSettings, SecretsSettings
from app.errors import ConfigError
from app.secrets import blob
from app.secrets.encoding import Base64Error, b64decode_strict, b64encode, loads
from app.secrets.errors import EncryptionError

log = logging.getLogger(__name__)

LOCAL_PROVIDER = "local"
LOCAL_KEY_ID = "env:NOETL_ENCRYPTION_KEY"
LOCAL_KEY_VERSION = "v1"
GCP_PROVIDER = "gcp-kms"
GCP_KMS_ENDPOINT = "https://cloudkms.googleapis.com/v1"
KMS_TIMEOUT_SECS = 10.0
KMS_VERSION_CACHE_SECS = 300.0


@dataclass(frozen=True)
class WrappedDek:
    """A DEK wrapped by the KEK; ``ciphertext`` is excluded from the repr."""

    provider: str
    key_id: str
    key_version: str
    ciphertext: bytes = field(repr=False)


class KeyManager(Protocol):
    """Wraps and unwraps 32-byte DEKs under the KEK."""

    provider: str

    async def wrap_dek(self, dek: bytes) -> WrappedDek: ...

    async def unwrap_dek(self, wrapped: WrappedDek) -> bytes: ...

    async def current_key_version(self) -> str: ...


class LocalDevKms:
    """KEK = the 32-byte master key; wrapped DEK = AES-GCM blob (60 bytes)."""

    provider = LOCAL_PROVIDER

    def __init__(self, master_key: bytes, *, nonce_source: Callable[[], bytes] | None = None) -> None:
        blob.check_key(master_key)
        self._key = master_key
        # Test hook only: production nonces are random.
        self._nonce_source = nonce_source

    def __repr__(self) -> str:
        return "LocalDevKms(<key redacted>)"

    async def wrap_dek(self, dek: bytes) -> WrappedDek:
        """Wrap ``dek`` with the master key."""
        nonce = self._nonce_source() if self._nonce_source else None
        return WrappedDek(
            LOCAL_PROVIDER, LOCAL_KEY_ID, LOCAL_KEY_VERSION, blob.encrypt(self._key, dek, nonce=nonce)
        )

    async def unwrap_dek(self, wrapped: WrappedDek) -> bytes:
        """Unwrap; key id and version are ignored, only the key bytes matter."""
        if wrapped.provider != LOCAL_PROVIDER:
            raise EncryptionError(f"LocalDevKms cannot unwrap a DEK from provider '{wrapped.provider}'")
        return blob.decrypt(self._key, wrapped.ciphertext)

    async def current_key_version(self) -> str:
        """Always ``v1``: the local KEK has no versions."""
        return LOCAL_KEY_VERSION

    def decrypt_legacy(self, data: bytes) -> bytes:
        """Decrypt an L1 blob (migration tool only)."""
        return blob.decrypt(self._key, data)


def version_from_name(name: str | None) -> str:
    """The segment after the last ``cryptoKeyVersions/`` (``primary`` if absent or empty)."""
    if not name:
        return "primary"
    marker = "cryptoKeyVersions/"
    idx = name.rfind(marker)
    if idx < 0:
        return "primary"
    return name[idx + len(marker) :].split("/", 1)[0] or "primary"


class MetadataToken:
    """GCE metadata-server access token cached until ``now + max(expires_in - 60, 1)``."""

    def __init__(self, url: str, *, floor: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._url = url
        self._floor = floor
        self._clock = clock
        self._token: str | None = None
        self._valid_until = 0.0

    async def get(self, session: aiohttp.ClientSession, timeout: float) -> str:
        """Return a cached or freshly fetched token."""
        if self._token is not None and self._clock() < self._valid_until:
            return self._token
        async with session.get(
            self._url,
            headers={"Metadata-Flavor": "Google"},
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            text = await resp.text()
            if resp.status // 100 != 2:
                raise RuntimeError(f"metadata token: HTTP {resp.status}")
        body = loads(text)
        token = body["access_token"]
        expires_in = float(body.get("expires_in", 0) or 0)
        if not isinstance(token, str):
            raise RuntimeError("metadata token: access_token is not a string")
        self._token = token
        self._valid_until = self._clock() + max(expires_in - 60, self._floor)
        return token


class GcpKms:
    """Cloud KMS wrap/unwrap of DEKs under ``NOETL_GCP_KMS_KEY``."""

    provider = GCP_PROVIDER

    def __init__(
        self,
        key_name: str,
        *,
        endpoint: str = GCP_KMS_ENDPOINT,
        token_url: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.key_name = key_name
        self._endpoint = endpoint.rstrip("/")
        self._token = MetadataToken(
            token_url or ProviderSettings.model_fields["gcp_metadata_token_url"].default
        )
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._version: str | None = None
        self._version_at = 0.0

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()

    async def _call(self, op: str, method: str, url: str, body: dict[str, str] | None) -> dict:
        session = self._http()
        try:
            token = await self._token.get(session, KMS_TIMEOUT_SECS)
            async with session.request(
                method,
                url,
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                timeout=aiohttp.ClientTimeout(total=KMS_TIMEOUT_SECS),
            ) as resp:
                text = await resp.text()
                if resp.status // 100 != 2:
                    raise EncryptionError(f"kms {op}: HTTP {resp.status} {text[:200]}")
        except EncryptionError:
            raise
        except Exception as exc:
            raise EncryptionError(f"kms {op}: {type(exc).__name__}") from None
        try:
            parsed = loads(text)
        except ValueError:
            raise EncryptionError(f"kms {op}: invalid JSON response") from None
        if not isinstance(parsed, dict):
            raise EncryptionError(f"kms {op}: unexpected response")
        return parsed

    async def wrap_dek(self, dek: bytes) -> WrappedDek:
        """``:encrypt`` the DEK; ``kv`` comes from the response's key version name."""
        resp = await self._call(
            "encrypt", "POST", f"{self._endpoint}/{self.key_name}:encrypt", {"plaintext": b64encode(dek)}
        )
        try:
            ct = b64decode_strict(resp["ciphertext"])
        except (KeyError, Base64Error):
            raise EncryptionError("kms encrypt: response ciphertext missing or not base64") from None
        return WrappedDek(GCP_PROVIDER, self.key_name, version_from_name(resp.get("name")), ct)

    async def unwrap_dek(self, wrapped: WrappedDek) -> bytes:
        """``:decrypt`` under the stored key id; KMS picks the version from the ciphertext."""
        if wrapped.provider != GCP_PROVIDER:
            raise EncryptionError(f"GcpKms cannot unwrap a DEK from provider '{wrapped.provider}'")
        resp = await self._call(
            "decrypt",
            "POST",
            f"{self._endpoint}/{wrapped.key_id}:decrypt",
            {"ciphertext": b64encode(wrapped.ciphertext)},
        )
        try:
            return b64decode_strict(resp["plaintext"])
        except (KeyError, Base64Error):
            raise EncryptionError("kms decrypt: response plaintext missing or not base64") from None

    async def current_key_version(self) -> str:
        """The primary version, cached 300 s; ``unknown`` on failure (rotation then re-wraps all)."""
        now = self._clock()
        if self._version is not None and now - self._version_at < KMS_VERSION_CACHE_SECS:
            return self._version
        try:
            resp = await self._call("get", "GET", f"{self._endpoint}/{self.key_name}", None)
            primary = resp.get("primary") or {}
            version = version_from_name(primary.get("name") if isinstance(primary, dict) else None)
        except EncryptionError:
            log.warning("kms: could not read the primary key version")
            return "unknown"
        self._version, self._version_at = version, now
        return version


def _truthy(v: str) -> bool:
    return v.strip().lower() in {"1", "true", "yes", "on"}


def parse_master_key(settings: SecretsSettings) -> bytes | None:
    """Decode ``NOETL_ENCRYPTION_KEY``; None when unset; ConfigError (refuse to start) when malformed."""
    raw = settings.encryption_key
    if raw.strip():
        try:
            key = b64decode_strict(raw)
        except Base64Error as exc:
            raise ConfigError(f"Invalid base64 key: {exc}") from None
        if len(key) != blob.KEY_LEN:
            raise ConfigError(f"Invalid key length: expected 32 bytes, got {len(key)}")
        return key
    if settings.allow_insecure_default_key:
        log.error(
            "NOETL_ALLOW_INSECURE_DEFAULT_KEY is set: using a RANDOM encryption key for this process; "
            "stored credentials will not survive a restart"
        )
        return os.urandom(blob.KEY_LEN)
    return None


def kms_mode(settings: SecretsSettings) -> str:
    """Normalised ``NOETL_KMS_PROVIDER``: ``local`` or ``gcp-kms`` (ConfigError otherwise)."""
    raw = settings.kms_provider.strip().lower()
    if raw in {"", "local"}:
        return LOCAL_PROVIDER
    if raw in {"gcp-kms", "gcp"}:
        return GCP_PROVIDER
    raise ConfigError(f"unknown NOETL_KMS_PROVIDER '{raw}' (expected 'local' or 'gcp-kms')")


def build_key_manager(
    settings: SecretsSettings, provider_settings: ProviderSettings | None = None
) -> KeyManager | None:
    """Build the KEK at start-up; None means "key not configured" (cipher routes answer 500)."""
    mode = kms_mode(settings)
    if mode == GCP_PROVIDER:
        key = settings.gcp_kms_key.strip()
        if not key:
            raise ConfigError("NOETL_GCP_KMS_KEY is required when NOETL_KMS_PROVIDER=gcp-kms")
        if "/cryptoKeys/" not in key:
            raise ConfigError(
                "NOETL_GCP_KMS_KEY must be a cryptoKey name "
                "(projects/<p>/locations/<l>/keyRings/<r>/cryptoKeys/<k>)"
            )
        ps = provider_settings or ProviderSettings()
        return GcpKms(key, token_url=ps.gcp_metadata_token_url)
    master = parse_master_key(settings)
    if master is None:
        log.error("NOETL_ENCRYPTION_KEY is not configured: credential routes will answer 500")
        return None
    return LocalDevKms(master)
