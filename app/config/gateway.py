"""Gateway settings (gateway.md §2.2) and the Auth0 verification settings the server shares (§4.1)."""

from __future__ import annotations

from pydantic import field_validator

from app.config._base import Group, env

DEFAULT_CORS = "http://localhost:8080,http://localhost:8090,http://localhost:3000"


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


class GatewaySettings(Group):
    port: int = env("ROUTER_PORT", "GATEWAY_PORT", default=8090, ge=1, le=65535)
    bind: str = env("GATEWAY_BIND", default="0.0.0.0")
    public_url: str = env("GATEWAY_PUBLIC_URL", default="http://gateway.gateway.svc.cluster.local:8090")
    noetl_base_url: str = env("NOETL_BASE_URL", default="http://localhost:8082")
    noetl_timeout_secs: float = env("NOETL_TIMEOUT_SECS", default=120.0, gt=0)
    session_bucket: str = env("NATS_SESSION_BUCKET", default="sessions")
    session_cache_ttl_secs: int = env("NATS_SESSION_CACHE_TTL_SECS", default=300, ge=1)
    request_bucket: str = env("NATS_REQUEST_BUCKET", default="requests")
    request_ttl_secs: int = env("NATS_REQUEST_TTL_SECS", default=1800, ge=1)
    callback_subject_prefix: str = env("NATS_CALLBACK_SUBJECT_PREFIX", default="noetl.callbacks")
    updates_subject_prefix: str = env("NATS_UPDATES_SUBJECT_PREFIX", default="noetl.events.")
    heartbeat_interval_secs: float = env("GATEWAY_HEARTBEAT_INTERVAL_SECS", default=30.0, gt=0)
    sse_enabled: bool = env("GATEWAY_SSE_ENABLED", default=True)
    cors_allowed_origins: str = env("CORS_ALLOWED_ORIGINS", default=DEFAULT_CORS)
    cors_allow_credentials_raw: str = env("CORS_ALLOW_CREDENTIALS", default="true")
    auth_bypass_raw: str = env("GATEWAY_AUTH_BYPASS", default="")
    verify_signature: str = env("NOETL_AUTH_VERIFY_SIGNATURE", default="enforce")
    auth0_domain_raw: str = env("NOETL_AUTH0_DOMAIN", default="")
    auth0_audience_raw: str = env("NOETL_AUTH0_AUDIENCE", default="")
    jwks_url: str = env("NOETL_AUTH_JWKS_URL", default="")
    jwks_ttl_secs: float = env("NOETL_AUTH_JWKS_TTL_SECS", default=600.0, gt=0)
    jwt_leeway_secs: int = env("NOETL_AUTH_JWT_LEEWAY_SECS", default=60, ge=0)
    session_max_hours: int = env("NOETL_AUTH_SESSION_MAX_HOURS", default=24, ge=1)
    gw_auth0_domain: str = env("GATEWAY_AUTH0_DOMAIN", default="")
    gw_auth0_client_id: str = env("GATEWAY_AUTH0_CLIENT_ID", default="")
    gw_auth0_redirect_uri: str = env("GATEWAY_AUTH0_REDIRECT_URI", default="")
    gw_auth0_audience: str = env("GATEWAY_AUTH0_AUDIENCE", default="")
    internal_api_token: str = env("NOETL_INTERNAL_API_TOKEN", default="", repr=False)
    trusted_proxies: str = env("GATEWAY_TRUSTED_PROXIES", default="")
    login_rate_per_minute: int = env("GATEWAY_LOGIN_RATE_LIMIT_PER_MINUTE", default=10, ge=1)
    auth_rate_per_minute: int = env("GATEWAY_AUTH_RATE_LIMIT_PER_MINUTE", default=60, ge=1)
    ingress_rate_per_minute: int = env("GATEWAY_INGRESS_RATE_LIMIT_PER_MINUTE", default=600, ge=1)
    sse_max_per_session: int = env("GATEWAY_SSE_MAX_CONNECTIONS_PER_SESSION", default=10, ge=1)
    invalid_session_cache_secs: float = env("GATEWAY_INVALID_SESSION_CACHE_SECS", default=30.0, ge=0)

    @field_validator("verify_signature")
    @classmethod
    def _mode(cls, v: str) -> str:
        v = v.strip().lower() or "enforce"
        if v not in {"enforce", "shadow", "off"}:
            raise ValueError("NOETL_AUTH_VERIFY_SIGNATURE must be enforce, shadow or off")
        return v

    @field_validator("cors_allowed_origins")
    @classmethod
    def _no_star(cls, v: str) -> str:
        if "*" in _csv(v):
            raise ValueError("CORS_ALLOWED_ORIGINS must not contain '*' (credentials are allowed)")
        return v

    @property
    def auth0_domains(self) -> list[str]:
        """Allowed Auth0 domains: NOETL_AUTH0_DOMAIN, else GATEWAY_AUTH0_DOMAIN."""
        return _csv(self.auth0_domain_raw) or _csv(self.gw_auth0_domain)

    @property
    def auth0_audiences(self) -> list[str]:
        """Accepted aud values: NOETL_AUTH0_AUDIENCE, else GATEWAY_AUTH0_CLIENT_ID."""
        return _csv(self.auth0_audience_raw) or _csv(self.gw_auth0_client_id)

    @property
    def cors_origins(self) -> list[str]:
        """The exact allowed origins."""
        return _csv(self.cors_allowed_origins)

    @property
    def cors_allow_credentials(self) -> bool:
        """Only the literal 'false' turns credentials off."""
        return self.cors_allow_credentials_raw.strip() != "false"

    @property
    def auth_bypass(self) -> bool:
        """Bypass only on the exact strings 'true' or '1'."""
        return self.auth_bypass_raw in {"true", "1"}
