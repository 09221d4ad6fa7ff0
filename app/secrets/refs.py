"""Secret-reference grammars of every provider (secrets.md §5.1–§5.7); no provider URL-encodes a ref."""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.secrets.errors import SecretConfigError

_REGION_RE = re.compile(r"^[A-Za-z0-9-]+$")


@dataclass(frozen=True)
class K8sRef:
    namespace: str
    secret: str
    key: str | None


def parse_k8s(ref: str, default_namespace: str) -> K8sRef:
    """``[<ns>/]<secret>/<key>`` or ``<secret>``: 1–3 non-empty segments."""
    parts = ref.split("/")
    if len(parts) > 3 or any(not p for p in parts):
        raise SecretConfigError(
            f"kubernetes secrets: invalid reference '{ref}' "
            "(expected '[<namespace>/]<secret>/<key>' or '<secret>')"
        )
    if len(parts) == 1:
        return K8sRef(default_namespace, parts[0], None)
    if len(parts) == 2:
        return K8sRef(default_namespace, parts[0], parts[1])
    return K8sRef(parts[0], parts[1], parts[2])


@dataclass(frozen=True)
class VaultRef:
    mount: str
    path: str
    key: str | None


def parse_vault(ref: str, default_mount: str) -> VaultRef:
    """``[<mount>/]<path>[#<key>]``: split at the first ``#``, then the first ``/``."""

    def bad() -> SecretConfigError:
        return SecretConfigError(f"vault: invalid reference '{ref}' (expected '[<mount>/]<path>[#<key>]')")

    location, sep, key = ref.partition("#")
    if sep and not key:
        raise bad()
    if not location:
        raise bad()
    mount, slash, path = location.partition("/")
    if slash:
        if not mount or not path:
            raise bad()
        return VaultRef(mount, path, key or None)
    return VaultRef(default_mount, location, key or None)


@dataclass(frozen=True)
class AwsRef:
    secret_id: str
    region: str | None
    json_key: str | None


def parse_aws(ref: str) -> AwsRef:
    """``[<region>:]<secret-id>[#<json-key>]``; ARNs are never split."""
    text = ref.strip()
    if not text:
        raise SecretConfigError("aws secrets manager: empty secret reference")
    rest, sep, key = text.partition("#")
    if sep and not key:
        raise SecretConfigError(f"aws secrets manager: empty JSON key in reference '{text}'")
    if not rest:
        raise SecretConfigError(f"aws secrets manager: empty secret id in reference '{text}'")
    if rest.startswith("arn:"):
        return AwsRef(rest, None, key or None)
    prefix, colon, remainder = rest.partition(":")
    if colon and prefix and remainder and _REGION_RE.match(prefix):
        return AwsRef(remainder, prefix, key or None)
    return AwsRef(rest, None, key or None)


@dataclass(frozen=True)
class AzureRef:
    vault: str | None
    name: str
    version: str | None


def parse_azure(ref: str) -> AzureRef:
    """``[<vault>/]<name>[#<version>]``: split at the first ``#``, then the first ``/``."""
    text = ref.strip()
    if not text:
        raise SecretConfigError("azure key vault: empty secret reference")
    location, sep, version = text.partition("#")
    if sep and not version:
        raise SecretConfigError(f"azure key vault: empty version in reference '{text}'")
    vault, slash, name = location.partition("/")
    if slash:
        if not vault or not name:
            raise SecretConfigError(
                f"azure key vault: invalid reference '{text}' (expected '[<vault>/]<name>[#<version>]')"
            )
        return AzureRef(vault, name, version or None)
    if not location:
        raise SecretConfigError(f"azure key vault: empty secret name in reference '{text}'")
    return AzureRef(None, location, version or None)


@dataclass(frozen=True)
class StsRef:
    region: str | None
    role_arn: str | None
    session: str | None


def parse_sts(ref: str) -> StsRef:
    """``[<region>:]<role-arn>[#<session>]``; empty allowed (env defaults apply)."""
    text = ref.strip()
    rest, sep, session = text.partition("#")
    if sep and not session:
        # A trailing bare '#' stays part of the role ARN.
        rest, session = text, ""
    region: str | None = None
    prefix, colon, remainder = rest.partition(":")
    if colon and prefix and _REGION_RE.match(prefix) and remainder.startswith("arn:"):
        region, rest = prefix, remainder
    return StsRef(region, rest or None, session or None)


@dataclass(frozen=True)
class AzureOAuthRef:
    tenant: str | None
    scope: str | None


def parse_azure_oauth(ref: str) -> AzureOAuthRef:
    """``[<tenant>:]<scope>``; the prefix is a tenant only if it cannot be a URL scheme."""
    text = ref.strip()
    prefix, colon, remainder = text.partition(":")
    if colon and prefix and "/" not in prefix and prefix.lower() not in {"http", "https"} and remainder:
        return AzureOAuthRef(prefix, remainder)
    return AzureOAuthRef(None, text or None)


@dataclass(frozen=True)
class GcpIamRef:
    service_account: str | None
    scope: str


GCP_IAM_DEFAULT_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def parse_gcp_iam(ref: str) -> GcpIamRef:
    """``<sa-email>[#<scope>]``; empty scope → cloud-platform."""
    sa, _, scope = ref.partition("#")
    sa, scope = sa.strip(), scope.strip()
    return GcpIamRef(sa or None, scope or GCP_IAM_DEFAULT_SCOPE)


def gcp_access_url(endpoint: str, name: str, project: str) -> str:
    """The Secret Manager ``:access`` URL for a reference (§5.2)."""
    ep = endpoint.rstrip("/")
    if name.startswith("projects/"):
        if "/versions/" in name:
            return f"{ep}/{name}:access"
        return f"{ep}/{name}/versions/latest:access"
    if not project:
        raise SecretConfigError(
            f"gcp secret manager: no project for secret '{name}' "
            "(set GOOGLE_CLOUD_PROJECT or use projects/<p>/secrets/<s>)"
        )
    return f"{ep}/projects/{project}/secrets/{name}/versions/latest:access"
