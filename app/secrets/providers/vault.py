"""HashiCorp Vault KV v2 reads with ``X-Vault-Token`` (secrets.md §5.4)."""

from __future__ import annotations

import aiohttp
from yarl import URL

from app.config.secrets import ProviderSettings
from app.secrets.errors import ProviderFetchError, SecretConfigError
from app.secrets.providers.base import (
    HttpProvider,
    SecretRef,
    SecretValue,
    json_kind,
    parse_json_body,
    read_token_file,
    select_key,
    ssl_context_with_ca,
)
from app.secrets.refs import parse_vault

WHAT = "vault"


class VaultKv2(HttpProvider):
    """``[<mount>/]<path>[#<key>]`` against ``{addr}/v1/{mount}/data/{path}``."""

    provider_id = "vault"

    def __init__(self, settings: ProviderSettings, region: str = "") -> None:
        super().__init__(ssl_ctx=ssl_context_with_ca(settings.vault_ca_file, required=True, what=WHAT))
        self._addr = (settings.vault_addr or "http://127.0.0.1:8200").rstrip("/")
        self._mount = settings.vault_kv_mount or "secret"
        self._namespace = settings.vault_namespace
        self._inline_token = settings.vault_token
        self._token_file = settings.vault_token_file
        self.region = region

    def _token(self) -> str:
        if self._inline_token:
            return self._inline_token
        if self._token_file:
            # Re-read per fetch so rotated tokens are picked up.
            token = read_token_file(self._token_file, WHAT)
            if token:
                return token
        raise SecretConfigError(f"{WHAT}: no token (set VAULT_TOKEN or NOETL_VAULT_TOKEN_FILE)")

    async def fetch(self, ref: SecretRef) -> SecretValue:
        """Read the KV v2 secret and select the key."""
        r = parse_vault(ref.name, self._mount)
        headers = {"X-Vault-Token": self._token()}
        if self._namespace:
            headers["X-Vault-Namespace"] = self._namespace
        url = f"{self._addr}/v1/{r.mount}/data/{r.path}"
        try:
            async with self.http().get(URL(url, encoded=True), headers=headers) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderFetchError(
                f"{WHAT}: request for '{r.mount}/{r.path}' failed: {type(exc).__name__}"
            ) from None
        if status // 100 != 2:
            raise ProviderFetchError(f"{WHAT}: HTTP {status} reading '{r.mount}/{r.path}': {text[:200]}")
        body = parse_json_body(text, WHAT, ProviderFetchError)
        try:
            outer = body["data"]
            data = outer["data"]
            if not isinstance(data, dict):
                raise TypeError
        except (KeyError, TypeError):
            raise ProviderFetchError(f"{WHAT}: response for '{r.mount}/{r.path}' has no data.data") from None
        key, value = select_key(data, r.key, r.path, WHAT, ProviderFetchError, key_sep="#")
        if not isinstance(value, str):
            raise ProviderFetchError(
                f"{WHAT}: key '{key}' of '{r.mount}/{r.path}' is not a string (got {json_kind(value)})"
            )
        meta = outer.get("metadata") if isinstance(outer, dict) else None
        version = meta.get("version") if isinstance(meta, dict) else None
        return SecretValue(value, str(version) if version is not None else None)


def build(settings: ProviderSettings, region: str) -> VaultKv2:
    """Build the provider for ``region``."""
    return VaultKv2(settings, region)
