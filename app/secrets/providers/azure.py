"""Azure Key Vault secret reads with an IMDS or static bearer token (secrets.md §5.6); failures are 500."""

from __future__ import annotations

import time
from collections.abc import Callable

import aiohttp
from yarl import URL

from app.config.secrets import ProviderSettings
from app.secrets.errors import SecretConfigError
from app.secrets.providers.base import HttpProvider, SecretRef, SecretValue, parse_json_body
from app.secrets.refs import parse_azure

WHAT = "azure key vault"
IMDS_RESOURCE_QUERY = "api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"


def secret_url(vault: str, suffix: str, name: str, version: str | None, api_version: str) -> str:
    """``https://<vault>.<suffix>/secrets/<name>[/<version>]?api-version=<v>``."""
    path = f"/secrets/{name}" + (f"/{version}" if version else "")
    return f"https://{vault}.{suffix}{path}?api-version={api_version}"


class AzureKeyVault(HttpProvider):
    """``[<vault>/]<name>[#<version>]`` with the default vault from ``AZURE_KEYVAULT_VAULT``."""

    provider_id = "azure"

    def __init__(
        self,
        settings: ProviderSettings,
        region: str = "",
        *,
        origin_override: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._default_vault = settings.azure_keyvault_vault
        self._suffix = settings.azure_keyvault_dns_suffix.strip(".") or "vault.azure.net"
        self._api_version = settings.azure_keyvault_api_version or "7.4"
        self._imds = settings.azure_imds_token_url
        self._static_token = settings.azure_keyvault_token
        # Test hook: send requests to a local origin while keeping the real Host header.
        self._origin_override = origin_override
        self._clock = clock
        self._token: str | None = None
        self._token_until = 0.0
        self.region = region

    async def _bearer(self) -> str:
        if self._static_token:
            return self._static_token
        now = self._clock()
        if self._token is not None and self._token_until - now > 30:
            return self._token
        sep = "&" if "?" in self._imds else "?"
        try:
            async with self.http().get(
                URL(f"{self._imds}{sep}{IMDS_RESOURCE_QUERY}", encoded=True), headers={"Metadata": "true"}
            ) as r:
                text = await r.text()
                status = r.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SecretConfigError(f"{WHAT}: IMDS token request failed: {type(exc).__name__}") from None
        if status // 100 != 2:
            raise SecretConfigError(f"{WHAT}: IMDS token HTTP {status}")
        doc = parse_json_body(text, f"{WHAT}: IMDS", SecretConfigError)
        token = doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise SecretConfigError(f"{WHAT}: IMDS response has no access_token")
        try:
            expires_in = float(str(doc.get("expires_in")))
        except ValueError:
            expires_in = 60.0
        self._token, self._token_until = token, now + expires_in
        return token

    async def fetch(self, ref: SecretRef) -> SecretValue:
        """GET the secret (latest or pinned version)."""
        r = parse_azure(ref.name)
        vault = r.vault or self._default_vault
        if not vault:
            raise SecretConfigError(
                f"{WHAT}: no vault for '{r.name}' (set AZURE_KEYVAULT_VAULT or use <vault>/<name>)"
            )
        url = secret_url(vault, self._suffix, r.name, r.version, self._api_version)
        headers = {"Authorization": f"Bearer {await self._bearer()}"}
        if self._origin_override:
            headers["Host"] = f"{vault}.{self._suffix}"
            url = self._origin_override.rstrip("/") + url.split(self._suffix, 1)[1]
        try:
            async with self.http().get(URL(url, encoded=True), headers=headers) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SecretConfigError(
                f"{WHAT}: request for '{vault}/{r.name}' failed: {type(exc).__name__}"
            ) from None
        if status // 100 != 2:
            raise SecretConfigError(f"{WHAT}: HTTP {status} reading '{vault}/{r.name}': {text[:400]}")
        doc = parse_json_body(text, WHAT, SecretConfigError)
        value = doc.get("value") if isinstance(doc, dict) else None
        if not isinstance(value, str):
            raise SecretConfigError(f"{WHAT}: response for '{vault}/{r.name}' has no string value")
        sid = doc.get("id")
        version = sid.rstrip("/").rsplit("/", 1)[-1] if isinstance(sid, str) and sid else None
        return SecretValue(value, version)


def build(settings: ProviderSettings, region: str) -> AzureKeyVault:
    """Build the provider for ``region``."""
    return AzureKeyVault(settings, region)
