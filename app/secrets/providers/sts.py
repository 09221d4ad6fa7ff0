"""AWS STS AssumeRoleWithWebIdentity as a dynamic provider (secrets.md §5.7); failures are 500."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import aiohttp
from yarl import URL

from app.config.secrets import ProviderSettings
from app.secrets.errors import SecretConfigError
from app.secrets.providers.base import HttpProvider, SecretRef, SecretValue, read_token_file
from app.secrets.providers.dynamic_common import form_encode, parse_rfc3339
from app.secrets.refs import parse_sts

WHAT = "aws sts"


def _xml_tag(body: str, tag: str) -> str | None:
    m = re.search(rf"<{tag}>(.*?)</{tag}>", body, re.DOTALL)
    return m.group(1).strip() if m else None


def _expiration(raw: Any) -> datetime:
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return datetime.fromtimestamp(float(raw), UTC)
    if isinstance(raw, str):
        return parse_rfc3339(raw, WHAT)
    raise SecretConfigError(f"{WHAT}: response has no Expiration")


class AwsSts(HttpProvider):
    """``[<region>:]<role-arn>[#<session>]`` → temporary credentials as a JSON string."""

    provider_id = "aws_sts"

    def __init__(self, settings: ProviderSettings, region: str = "") -> None:
        super().__init__(timeout=15.0)
        self._role = settings.aws_role_arn
        self._token_file = settings.aws_web_identity_token_file
        self._default_region = settings.aws_region or "us-east-1"
        self._duration = settings.aws_sts_duration_secs
        self._override = settings.aws_sts_endpoint_override
        self.region = region

    def endpoint(self, region: str) -> str:
        """The override verbatim, else ``https://sts.<region>.amazonaws.com/``."""
        return self._override or f"https://sts.{region}.amazonaws.com/"

    def request_body(self, role: str, session: str, token: str) -> str:
        """The form body in the spec's parameter order."""
        return form_encode(
            [
                ("Action", "AssumeRoleWithWebIdentity"),
                ("Version", "2011-06-15"),
                ("RoleArn", role),
                ("RoleSessionName", session),
                ("DurationSeconds", str(self._duration)),
                ("WebIdentityToken", token),
            ]
        )

    async def fetch(self, ref: SecretRef) -> SecretValue:
        """Exchange the web-identity token for role credentials."""
        r = parse_sts(ref.name)
        role = r.role_arn or self._role
        if not role:
            raise SecretConfigError(f"{WHAT}: no role ARN (reference or AWS_ROLE_ARN)")
        token = read_token_file(self._token_file, WHAT)
        if not token:
            raise SecretConfigError(f"{WHAT}: web identity token file '{self._token_file}' is empty")
        region = r.region or ref.region or self._default_region
        body = self.request_body(role, r.session or "noetl-server", token)
        headers = {"content-type": "application/x-www-form-urlencoded", "accept": "application/json"}
        try:
            async with self.http().post(
                URL(self.endpoint(region), encoded=True), data=body, headers=headers
            ) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SecretConfigError(f"{WHAT}: request failed: {type(exc).__name__}") from None
        if status // 100 != 2:
            raise SecretConfigError(f"{WHAT}: AssumeRoleWithWebIdentity returned {status}: {text[:400]}")
        return self._parse(text)

    def _parse(self, text: str) -> SecretValue:
        body = text.strip()
        if body.startswith("{"):
            try:
                doc = json.loads(body)
                result = doc["AssumeRoleWithWebIdentityResponse"]["AssumeRoleWithWebIdentityResult"]
                creds = result["Credentials"]
                akid, secret, session = creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]
                expiration = _expiration(creds.get("Expiration"))
                role_id = (result.get("AssumedRoleUser") or {}).get("AssumedRoleId")
            except (ValueError, KeyError, TypeError, AttributeError):
                raise SecretConfigError(f"{WHAT}: unexpected JSON response shape") from None
        else:
            akid, secret, session = (
                _xml_tag(body, t) for t in ("AccessKeyId", "SecretAccessKey", "SessionToken")
            )
            exp_raw = _xml_tag(body, "Expiration")
            if not (akid and secret and session and exp_raw):
                raise SecretConfigError(f"{WHAT}: response lacks credentials")
            expiration = parse_rfc3339(exp_raw, WHAT)
            role_id = _xml_tag(body, "AssumedRoleId")
        value = json.dumps(
            {"access_key_id": akid, "secret_access_key": secret, "session_token": session},
            separators=(",", ":"),
        )
        return SecretValue(value, role_id if isinstance(role_id, str) else None, expiration)


def build(settings: ProviderSettings, region: str) -> AwsSts:
    """Build the provider for ``region``."""
    return AwsSts(settings, region)
