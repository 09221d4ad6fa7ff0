"""AWS Secrets Manager GetSecretValue signed with SigV4 (secrets.md §5.5); every failure is a 500."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from app.config.secrets import ProviderSettings
from app.secrets.errors import SecretConfigError
from app.secrets.providers.base import HttpProvider, SecretRef, SecretValue, json_kind, parse_json_body
from app.secrets.providers.sigv4 import sign_json_post
from app.secrets.refs import parse_aws

WHAT = "aws secrets manager"
TARGET = "secretsmanager.GetSecretValue"
SERVICE = "secretsmanager"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def json_key_value(secret_string: str, key: str, secret_id: str) -> str:
    """Pick ``key`` out of a JSON SecretString: string as is, number/bool as text, null → ``""``."""
    try:
        doc = json.loads(secret_string)
    except ValueError:
        raise SecretConfigError(f"{WHAT}: SecretString of '{secret_id}' is not JSON") from None
    if not isinstance(doc, dict):
        raise SecretConfigError(f"{WHAT}: SecretString of '{secret_id}' is not a JSON object")
    if key not in doc:
        raise SecretConfigError(f"{WHAT}: SecretString of '{secret_id}' has no key '{key}'")
    v = doc[key]
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return json.dumps(v)
    raise SecretConfigError(f"{WHAT}: key '{key}' of '{secret_id}' is not a scalar (got {json_kind(v)})")


class AwsSecretsManager(HttpProvider):
    """``[<region>:]<secret-id>[#<json-key>]``; region: ref prefix → entry region → default region."""

    provider_id = "aws"

    def __init__(
        self, settings: ProviderSettings, region: str = "", *, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        super().__init__()
        if not settings.aws_access_key_id or not settings.aws_secret_access_key:
            raise SecretConfigError(f"{WHAT}: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are required")
        if not settings.aws_region:
            raise SecretConfigError(f"{WHAT}: AWS_REGION or AWS_DEFAULT_REGION is required")
        self._akid = settings.aws_access_key_id
        self._secret = settings.aws_secret_access_key
        self._session_token = settings.aws_session_token or None
        self._default_region = settings.aws_region
        self._endpoint_override = settings.aws_sm_endpoint.rstrip("/")
        self._clock = clock
        self.region = region

    def endpoint(self, region: str) -> str:
        """Override, else ``https://secretsmanager.<region>.amazonaws.com``."""
        return self._endpoint_override or f"https://secretsmanager.{region}.amazonaws.com"

    async def fetch(self, ref: SecretRef) -> SecretValue:
        """Call GetSecretValue for the current version."""
        r = parse_aws(ref.name)
        region = r.region or ref.region or self._default_region
        endpoint = self.endpoint(region)
        host = urlsplit(endpoint).netloc
        body = json.dumps(
            {"SecretId": r.secret_id, "VersionStage": "AWSCURRENT"}, separators=(",", ":"), sort_keys=True
        ).encode("utf-8")
        headers = sign_json_post(
            host=host,
            body=body,
            region=region,
            service=SERVICE,
            target=TARGET,
            access_key=self._akid,
            secret_key=self._secret,
            session_token=self._session_token,
            now=self._clock(),
        )
        try:
            async with self.http().post(
                URL(endpoint + "/", encoded=True), data=body, headers=headers
            ) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SecretConfigError(
                f"{WHAT}: GetSecretValue '{r.secret_id}' failed: {type(exc).__name__}"
            ) from None
        if status // 100 != 2:
            raise SecretConfigError(f"GetSecretValue '{r.secret_id}' returned {status}: {text[:400]}")
        doc = parse_json_body(text, WHAT, SecretConfigError)
        secret_string = doc.get("SecretString") if isinstance(doc, dict) else None
        if not isinstance(secret_string, str):
            raise SecretConfigError(
                f"{WHAT}: '{r.secret_id}' has no SecretString (binary secrets unsupported)"
            )
        value = json_key_value(secret_string, r.json_key, r.secret_id) if r.json_key else secret_string
        version = doc.get("VersionId")
        return SecretValue(value, version if isinstance(version, str) else None)


def build(settings: ProviderSettings, region: str) -> AwsSecretsManager:
    """Build the provider for ``region`` (missing keys or region → 500 build error)."""
    return AwsSecretsManager(settings, region)
