"""Auth0 token verification (gateway.md §4.1): RS256 against the tenant JWKS, shared by gateway and server."""

from __future__ import annotations

import base64
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import jwt

from app.config.gateway import GatewaySettings
from app.errors import Unauthorized, Unavailable
from app.gateway.jwks import JwksCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Identity:
    """The claims a verified token contributes to login."""

    sub: str
    email: str
    name: str
    email_verified: bool
    domain: str
    signature_verified: bool


class Auth0Verifier:
    """Verifies Auth0 tokens; one JWKS cache per process keyed by kid."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.s = settings
        self._jwks = JwksCache(settings.jwks_ttl_secs)

    @property
    def enforced(self) -> bool:
        """True when signatures are required (the default)."""
        return self.s.verify_signature == "enforce"

    def resolve_domain(self, requested: str | None) -> str:
        """The configured domain to verify against; 401 for a foreign one, 503 when none is configured."""
        domains = self.s.auth0_domains
        if not domains:
            raise Unavailable("Auth0 is not configured")
        if requested:
            if requested.strip() not in domains:
                raise Unauthorized("auth0_domain not allowed")
            return requested.strip()
        return domains[0]

    def jwks_url(self, domain: str) -> str:
        """The JWKS URL: the override, else the tenant's well-known path."""
        return self.s.jwks_url or f"https://{domain}/.well-known/jwks.json"

    async def _key(self, domain: str, kid: str) -> Any:
        key = await self._jwks.key(self.jwks_url(domain), kid)
        if key is None:
            raise Unauthorized("Invalid Auth0 token: unknown signing key")
        return key

    async def verify(self, token: str, domain: str) -> Identity:
        """Verified identity, or Unauthorized('Invalid Auth0 token: ...'); Unavailable when JWKS/config fails."""
        audiences = self.s.auth0_audiences
        if not audiences and self.enforced:
            raise Unavailable("Auth0 audience is not configured")
        if self.s.verify_signature == "off":
            claims = _decode_unverified(token, domain, self.s.jwt_leeway_secs)
            log.warning("login accepted WITHOUT signature verification (NOETL_AUTH_VERIFY_SIGNATURE=off)")
            return _identity(claims, domain, verified=False)
        try:
            claims = await self._verify_signed(token, domain, audiences)
            return _identity(claims, domain, verified=True)
        except Unauthorized:
            if self.s.verify_signature != "shadow":
                raise
            claims = _decode_unverified(token, domain, self.s.jwt_leeway_secs)
            log.warning("login accepted with an INVALID signature (NOETL_AUTH_VERIFY_SIGNATURE=shadow)")
            return _identity(claims, domain, verified=False)

    async def _verify_signed(self, token: str, domain: str, audiences: list[str]) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("Invalid Auth0 token: malformed token") from None
        if header.get("alg") != "RS256":
            raise Unauthorized(f"Invalid Auth0 token: algorithm {header.get('alg')!r} is not RS256")
        kid = header.get("kid")
        if not kid:
            raise Unauthorized("Invalid Auth0 token: missing kid")
        key = await self._key(domain, str(kid))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=audiences,
                issuer=f"https://{domain}/",
                leeway=self.s.jwt_leeway_secs,
                options={"require": ["exp", "iss", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"Invalid Auth0 token: {exc}") from None
        if not str(claims.get("sub") or "").strip():
            raise Unauthorized("Invalid Auth0 token: empty sub")
        return claims


def _b64json(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _decode_unverified(token: str, domain: str, leeway: int) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:
        raise Unauthorized("Invalid Auth0 token: not a JWT")
    try:
        claims = _b64json(parts[1])
    except (ValueError, UnicodeDecodeError):
        raise Unauthorized("Invalid Auth0 token: undecodable payload") from None
    if not isinstance(claims, dict):
        raise Unauthorized("Invalid Auth0 token: payload is not an object")
    if claims.get("iss") != f"https://{domain}/":
        raise Unauthorized("Invalid Auth0 token: wrong issuer")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp + leeway < time.time():
        raise Unauthorized("Invalid Auth0 token: expired")
    if not str(claims.get("sub") or "").strip():
        raise Unauthorized("Invalid Auth0 token: empty sub")
    return claims


def _identity(claims: dict[str, Any], domain: str, *, verified: bool) -> Identity:
    email = str(claims.get("email") or "").strip()
    if not email:
        raise Unauthorized("Invalid Auth0 token: missing email claim")
    return Identity(
        sub=str(claims["sub"]),
        email=email,
        name=str(claims.get("name") or email),
        email_verified=claims.get("email_verified") is True,
        domain=domain,
        signature_verified=verified,
    )
