"""GCP Secret Manager ``:access`` with the metadata-server token (secrets.md §5.2)."""

from __future__ import annotations

import aiohttp
from yarl import URL

from app.config.secrets import ProviderSettings
from app.secrets.encoding import Base64Error, b64decode_strict
from app.secrets.errors import ProviderFetchError, SecretConfigError
from app.secrets.keys import MetadataToken
from app.secrets.providers.base import HttpProvider, SecretRef, SecretValue, parse_json_body
from app.secrets.refs import gcp_access_url

WHAT = "gcp secret manager"


class GcpSecretManager(HttpProvider):
    """Reads ``projects/<p>/secrets/<s>[/versions/<v>]`` or a bare secret name in the default project."""

    provider_id = "gcp"

    def __init__(self, settings: ProviderSettings, region: str = "") -> None:
        super().__init__()
        self._endpoint = settings.gcp_sm_endpoint
        self._project = settings.google_cloud_project
        self._token = MetadataToken(settings.gcp_metadata_token_url)
        self.region = region

    async def fetch(self, ref: SecretRef) -> SecretValue:
        """Access the secret version and decode its payload."""
        url = gcp_access_url(self._endpoint, ref.name, ref.project or self._project)
        session = self.http()
        try:
            token = await self._token.get(session, self._timeout.total or 10.0)
        except Exception as exc:
            raise ProviderFetchError(f"{WHAT}: metadata token: {type(exc).__name__}") from None
        try:
            async with session.get(
                URL(url, encoded=True), headers={"Authorization": f"Bearer {token}"}
            ) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderFetchError(
                f"{WHAT}: request for '{ref.name}' failed: {type(exc).__name__}"
            ) from None
        if status // 100 != 2:
            raise ProviderFetchError(f"{WHAT}: HTTP {status} accessing '{ref.name}': {text[:200]}")
        body = parse_json_body(text, WHAT, ProviderFetchError)
        try:
            data = body["payload"]["data"]
            if not isinstance(data, str):
                raise TypeError
        except (KeyError, TypeError):
            raise ProviderFetchError(f"{WHAT}: response for '{ref.name}' has no payload.data") from None
        try:
            value = b64decode_strict(data.strip()).decode("utf-8")
        except Base64Error:
            raise ProviderFetchError(f"{WHAT}: payload of '{ref.name}' is not valid base64") from None
        except UnicodeDecodeError:
            raise ProviderFetchError(f"{WHAT}: payload of '{ref.name}' is not UTF-8") from None
        name = body.get("name") if isinstance(body, dict) else None
        version = None
        if isinstance(name, str) and "/versions/" in name:
            version = name.split("/versions/", 1)[1]
        return SecretValue(value, version)


def build(settings: ProviderSettings, region: str) -> GcpSecretManager:
    """Build the provider for ``region``."""
    if not settings.gcp_sm_endpoint:
        raise SecretConfigError(f"{WHAT}: NOETL_GCP_SM_ENDPOINT is empty")
    return GcpSecretManager(settings, region)
