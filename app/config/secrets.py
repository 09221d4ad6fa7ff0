"""Secrets wallet and provider settings (secrets.md §11, §5.8)."""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from app.config._base import Group, env


def _truthy(value: Any, accepted: frozenset[str]) -> bool:
    """Trimmed, case-insensitive membership; anything else (including garbage) is false."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in accepted


class SecretsSettings(Group):
    encryption_key: str = env("NOETL_ENCRYPTION_KEY", default="", repr=False)
    allow_insecure_default_key: bool = env("NOETL_ALLOW_INSECURE_DEFAULT_KEY", default=False)
    kms_provider: str = env("NOETL_KMS_PROVIDER", default="local")
    gcp_kms_key: str = env("NOETL_GCP_KMS_KEY", default="")
    broker_registry: str = env("NOETL_SECRET_BROKER_REGISTRY", default="")
    broker_timeout_secs: float = env("NOETL_SECRET_BROKER_TIMEOUT_SECS", default=10.0, gt=0)
    broker_token: str = env("NOETL_SECRET_BROKER_TOKEN", default="", repr=False)
    provider_ttl_seconds: float = env("NOETL_SECRET_PROVIDER_TTL_SECONDS", default=0.0, ge=0)
    cache_safety_margin_secs: float = env("KEYCHAIN_CACHE_DYNAMIC_SAFETY_MARGIN_SECS", default=60.0, ge=0)
    cache_refresh_window_secs: float = env("KEYCHAIN_CACHE_REFRESH_WINDOW_SECS", default=60.0, ge=0)
    audit_required: bool = env("NOETL_SECRET_AUDIT_REQUIRED", default=False)

    @field_validator("allow_insecure_default_key", mode="before")
    @classmethod
    def _insecure_flag(cls, v: Any) -> bool:
        return _truthy(v, frozenset({"1", "true", "yes", "on"}))

    @field_validator("audit_required", mode="before")
    @classmethod
    def _audit_flag(cls, v: Any) -> bool:
        return _truthy(v, frozenset({"1", "true", "yes"}))

    @field_validator("provider_ttl_seconds", mode="before")
    @classmethod
    def _provider_ttl(cls, v: Any) -> float:
        # Unset, 0 or unparseable → no TTL (process lifetime).
        try:
            ttl = float(str(v).strip())
        except ValueError:
            return 0.0
        return ttl if ttl > 0 and ttl == ttl else 0.0


class ProviderSettings(Group):
    """Env vars of the secret providers, read once when a provider is built."""

    google_cloud_project: str = env("GOOGLE_CLOUD_PROJECT", "GCP_PROJECT", default="")
    gcp_sm_endpoint: str = env("NOETL_GCP_SM_ENDPOINT", default="https://secretmanager.googleapis.com/v1")
    gcp_metadata_token_url: str = env(
        "NOETL_GCP_METADATA_TOKEN_URL",
        default="http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token",
    )
    gcp_impersonate_sa: str = env("NOETL_GCP_IMPERSONATE_SA", default="")
    gcp_iam_credentials_endpoint: str = env(
        "NOETL_GCP_IAM_CREDENTIALS_ENDPOINT", default="https://iamcredentials.googleapis.com/v1"
    )
    gcp_iam_lifetime_secs: int = env("NOETL_GCP_IAM_LIFETIME_SECS", default=3600)
    k8s_api_url: str = env("NOETL_K8S_API_URL", default="")
    kubernetes_service_host: str = env("KUBERNETES_SERVICE_HOST", default="")
    kubernetes_service_port: str = env("KUBERNETES_SERVICE_PORT", default="")
    k8s_ca_file: str = env(
        "NOETL_K8S_CA_FILE", default="/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    )
    k8s_token: str = env("NOETL_K8S_TOKEN", default="", repr=False)
    k8s_token_file: str = env(
        "NOETL_K8S_TOKEN_FILE", default="/var/run/secrets/kubernetes.io/serviceaccount/token"
    )
    k8s_namespace: str = env("NOETL_K8S_NAMESPACE", default="")
    vault_addr: str = env("VAULT_ADDR", default="http://127.0.0.1:8200")
    vault_kv_mount: str = env("NOETL_VAULT_KV_MOUNT", default="secret")
    vault_namespace: str = env("VAULT_NAMESPACE", default="")
    vault_token: str = env("VAULT_TOKEN", default="", repr=False)
    vault_token_file: str = env("NOETL_VAULT_TOKEN_FILE", default="")
    vault_ca_file: str = env("NOETL_VAULT_CA_FILE", default="")
    aws_access_key_id: str = env("AWS_ACCESS_KEY_ID", default="", repr=False)
    aws_secret_access_key: str = env("AWS_SECRET_ACCESS_KEY", default="", repr=False)
    aws_session_token: str = env("AWS_SESSION_TOKEN", default="", repr=False)
    aws_region: str = env("AWS_REGION", "AWS_DEFAULT_REGION", default="")
    aws_sm_endpoint: str = env("NOETL_AWS_SM_ENDPOINT", default="")
    aws_role_arn: str = env("AWS_ROLE_ARN", default="")
    aws_web_identity_token_file: str = env(
        "AWS_WEB_IDENTITY_TOKEN_FILE", default="/var/run/secrets/eks.amazonaws.com/serviceaccount/token"
    )
    aws_sts_duration_secs: int = env("NOETL_AWS_STS_DURATION_SECS", default=3600)
    aws_sts_endpoint_override: str = env("NOETL_AWS_STS_ENDPOINT_OVERRIDE", default="")
    azure_keyvault_vault: str = env("AZURE_KEYVAULT_VAULT", default="")
    azure_keyvault_dns_suffix: str = env("NOETL_AZURE_KEYVAULT_DNS_SUFFIX", default="vault.azure.net")
    azure_keyvault_api_version: str = env("NOETL_AZURE_KEYVAULT_API_VERSION", default="7.4")
    azure_imds_token_url: str = env(
        "NOETL_AZURE_IMDS_TOKEN_URL", default="http://169.254.169.254/metadata/identity/oauth2/token"
    )
    azure_keyvault_token: str = env("AZURE_KEYVAULT_TOKEN", default="", repr=False)
    azure_tenant_id: str = env("AZURE_TENANT_ID", default="")
    azure_client_id: str = env("AZURE_CLIENT_ID", default="")
    azure_client_secret: str = env("AZURE_CLIENT_SECRET", default="", repr=False)
    azure_oauth_scope: str = env("NOETL_AZURE_OAUTH_SCOPE", default="https://graph.microsoft.com/.default")
    azure_aad_host: str = env("NOETL_AZURE_AAD_HOST", default="https://login.microsoftonline.com")
