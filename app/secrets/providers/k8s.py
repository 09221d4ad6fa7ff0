"""Kubernetes Secret reads from the API server with the ServiceAccount token (secrets.md §5.3)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from yarl import URL

from app.config.secrets import ProviderSettings
from app.secrets.encoding import Base64Error, b64decode_strict
from app.secrets.errors import ProviderFetchError, SecretConfigError
from app.secrets.providers.base import (
    HttpProvider,
    SecretRef,
    SecretValue,
    parse_json_body,
    read_token_file,
    select_key,
    ssl_context_with_ca,
)
from app.secrets.refs import parse_k8s

WHAT = "kubernetes secrets"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def api_url(settings: ProviderSettings) -> str:
    """``NOETL_K8S_API_URL``, else the in-cluster service env, else ``https://kubernetes.default.svc``."""
    if settings.k8s_api_url:
        return settings.k8s_api_url.rstrip("/")
    if settings.kubernetes_service_host:
        port = settings.kubernetes_service_port or "443"
        return f"https://{settings.kubernetes_service_host}:{port}"
    return "https://kubernetes.default.svc"


class KubernetesSecrets(HttpProvider):
    """``[<ns>/]<secret>/<key>`` or ``<secret>`` against ``/api/v1/namespaces/{ns}/secrets/{secret}``."""

    provider_id = "k8s"

    def __init__(self, settings: ProviderSettings, region: str = "", *, sa_dir: str = SA_DIR) -> None:
        super().__init__(ssl_ctx=ssl_context_with_ca(settings.k8s_ca_file, required=False, what=WHAT))
        self._api = api_url(settings)
        self._inline_token = settings.k8s_token
        self._token_file = settings.k8s_token_file or f"{sa_dir}/token"
        ns = settings.k8s_namespace
        if not ns:
            try:
                ns = Path(f"{sa_dir}/namespace").read_text().strip()
            except OSError:
                ns = ""
        self.default_namespace = ns or "default"
        self.region = region

    def _token(self) -> str:
        # Re-read per fetch: projected ServiceAccount tokens rotate.
        return self._inline_token or read_token_file(self._token_file, WHAT)

    async def fetch(self, ref: SecretRef) -> SecretValue:
        """GET the Secret object and decode the selected key."""
        r = parse_k8s(ref.name, self.default_namespace)
        token = self._token()
        url = f"{self._api}/api/v1/namespaces/{r.namespace}/secrets/{r.secret}"
        try:
            async with self.http().get(
                URL(url, encoded=True),
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            ) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderFetchError(
                f"{WHAT}: request for '{r.namespace}/{r.secret}' failed: {type(exc).__name__}"
            ) from None
        if status // 100 != 2:
            raise ProviderFetchError(
                f"{WHAT}: HTTP {status} reading '{r.namespace}/{r.secret}': {text[:200]}"
            )
        body = parse_json_body(text, WHAT, ProviderFetchError)
        data = body.get("data") if isinstance(body, dict) else None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ProviderFetchError(f"{WHAT}: Secret '{r.secret}' has a malformed data map")
        key, raw = select_key(data, r.key, r.secret, WHAT, ProviderFetchError)
        if not isinstance(raw, str):
            raise ProviderFetchError(f"{WHAT}: Secret '{r.secret}' key '{key}' is not a base64 string")
        try:
            value = b64decode_strict(raw.strip()).decode("utf-8")
        except Base64Error:
            raise ProviderFetchError(f"{WHAT}: Secret '{r.secret}' key '{key}' is not valid base64") from None
        except UnicodeDecodeError:
            raise ProviderFetchError(f"{WHAT}: Secret '{r.secret}' key '{key}' is not UTF-8") from None
        meta = body.get("metadata") or {}
        version = meta.get("resourceVersion") if isinstance(meta, dict) else None
        return SecretValue(value, str(version) if version is not None else None)


def build(settings: ProviderSettings, region: str) -> KubernetesSecrets:
    """Build the provider for ``region``."""
    if not isinstance(settings, ProviderSettings):
        raise SecretConfigError(f"{WHAT}: invalid settings")
    return KubernetesSecrets(settings, region)
