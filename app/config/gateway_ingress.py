"""Push-ingress settings of the gateway (gateway.md §11); the listeners themselves come from the server."""

from __future__ import annotations

from app.config._base import Group, env

GOOGLE_JWKS_URL = "https://www.googleapis.com/oauth2/v3/certs"


class IngressSettings(Group):
    google_jwks_url: str = env("GATEWAY_INGRESS_GOOGLE_JWKS_URL", default=GOOGLE_JWKS_URL)
    max_body_bytes: int = env("GATEWAY_INGRESS_MAX_BODY_BYTES", default=10 * 1024 * 1024, ge=1)
