"""GCP IAM Credentials generateAccessToken as a dynamic provider (secrets.md §5.7); failures are 500."""

from __future__ import annotations

import json

import aiohttp
from yarl import URL

from app.config.secrets import ProviderSettings
from app.secrets.errors import SecretConfigError
from app.secrets.keys import MetadataToken
from app.secrets.providers.base import HttpProvider, SecretRef, SecretValue, parse_json_body
from app.secrets.providers.dynamic_common import parse_rfc3339
from app.secrets.refs import parse_gcp_iam

WHAT = "gcp iam credentials"


class GcpIamCredentials(HttpProvider):
    """``<sa-email>[#<scope>]`` → an impersonated access token."""

    provider_id = "gcp_iam"

    def __init__(self, settings: ProviderSettings, region: str = "") -> None:
        super().__init__()
        self._sa = settings.gcp_impersonate_sa
        self._endpoint = settings.gcp_iam_credentials_endpoint.rstrip("/")
        # The caller's metadata token is cached expires_in − 60 s with no floor.
        self._token = MetadataToken(settings.gcp_metadata_token_url, floor=float("-inf"))
        self._lifetime = settings.gcp_iam_lifetime_secs
        self.region = region

    async def fetch(self, ref: SecretRef) -> SecretValue:
        """Generate an access token for the service account."""
        r = parse_gcp_iam(ref.name)
        sa = r.service_account or self._sa
        if not sa:
            raise SecretConfigError(f"{WHAT}: no service account (reference or NOETL_GCP_IMPERSONATE_SA)")
        session = self.http()
        try:
            caller = await self._token.get(session, 10.0)
        except Exception as exc:
            raise SecretConfigError(f"{WHAT}: metadata token: {type(exc).__name__}") from None
        url = URL(f"{self._endpoint}/projects/-/serviceAccounts/{sa}:generateAccessToken", encoded=True)
        body = json.dumps({"lifetime": f"{self._lifetime}s", "scope": [r.scope]}, separators=(",", ":"))
        try:
            async with session.post(
                url,
                data=body,
                headers={"Authorization": f"Bearer {caller}", "Content-Type": "application/json"},
            ) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SecretConfigError(f"{WHAT}: request failed: {type(exc).__name__}") from None
        if status // 100 != 2:
            raise SecretConfigError(f"{WHAT}: generateAccessToken returned {status}: {text[:400]}")
        doc = parse_json_body(text, WHAT, SecretConfigError)
        token = doc.get("accessToken") if isinstance(doc, dict) else None
        expire = doc.get("expireTime") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token or not isinstance(expire, str):
            raise SecretConfigError(f"{WHAT}: response lacks accessToken/expireTime")
        return SecretValue(token, None, parse_rfc3339(expire, WHAT))


def build(settings: ProviderSettings, region: str) -> GcpIamCredentials:
    """Build the provider for ``region``."""
    return GcpIamCredentials(settings, region)
