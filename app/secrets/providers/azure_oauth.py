"""Azure AD client-credentials tokens as a dynamic provider (secrets.md §5.7); failures are 500."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import aiohttp
from yarl import URL

from app.config.secrets import ProviderSettings
from app.secrets.errors import SecretConfigError
from app.secrets.providers.base import HttpProvider, SecretRef, SecretValue, parse_json_body
from app.secrets.providers.dynamic_common import form_encode
from app.secrets.refs import parse_azure_oauth

WHAT = "azure oauth"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AzureOAuth(HttpProvider):
    """``[<tenant>:]<scope>`` → a raw access token expiring at ``now + expires_in``."""

    provider_id = "azure_oauth"

    def __init__(
        self, settings: ProviderSettings, region: str = "", *, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        super().__init__(timeout=15.0)
        if not (settings.azure_tenant_id and settings.azure_client_id and settings.azure_client_secret):
            raise SecretConfigError(
                f"{WHAT}: AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET are required"
            )
        self._tenant = settings.azure_tenant_id
        self._client_id = settings.azure_client_id
        self._client_secret = settings.azure_client_secret
        self._scope = settings.azure_oauth_scope
        self._host = settings.azure_aad_host.rstrip("/")
        self._clock = clock
        self._mono = time.monotonic
        self.region = region

    async def fetch(self, ref: SecretRef) -> SecretValue:
        """Request a client-credentials token for the scope."""
        r = parse_azure_oauth(ref.name)
        tenant, scope = r.tenant or self._tenant, r.scope or self._scope
        body = form_encode(
            [
                ("grant_type", "client_credentials"),
                ("client_id", self._client_id),
                ("client_secret", self._client_secret),
                ("scope", scope),
            ]
        )
        url = URL(f"{self._host}/{tenant}/oauth2/v2.0/token", encoded=True)
        headers = {"content-type": "application/x-www-form-urlencoded", "accept": "application/json"}
        try:
            async with self.http().post(url, data=body, headers=headers) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SecretConfigError(f"{WHAT}: token request failed: {type(exc).__name__}") from None
        if status // 100 != 2:
            raise SecretConfigError(f"{WHAT}: token endpoint returned {status}: {text[:400]}")
        doc = parse_json_body(text, WHAT, SecretConfigError)
        token = doc.get("access_token") if isinstance(doc, dict) else None
        expires_in = doc.get("expires_in") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise SecretConfigError(f"{WHAT}: response has no access_token")
        if isinstance(expires_in, bool) or not isinstance(expires_in, int):
            raise SecretConfigError(f"{WHAT}: response expires_in is not an integer")
        return SecretValue(token, None, self._clock() + timedelta(seconds=expires_in))


def build(settings: ProviderSettings, region: str) -> AzureOAuth:
    """Build the provider (tenant/client id/secret required)."""
    return AzureOAuth(settings, region)
