"""A JWKS cache keyed by kid (RSA keys only), shared by Auth0 login and Pub/Sub OIDC ingress."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
from jwt.algorithms import RSAAlgorithm

from app.errors import Unavailable

JWKS_TIMEOUT = 5.0
REFRESH_MIN_INTERVAL = 60.0  # an unknown kid refreshes at most once a minute (no fetch amplification)


def rsa_keys(doc: Any) -> dict[str, Any]:
    """kid → public key for every parsable RSA JWK of a JWKS document."""
    keys: dict[str, Any] = {}
    for jwk in doc.get("keys", []) if isinstance(doc, dict) else []:
        if isinstance(jwk, dict) and jwk.get("kid") and jwk.get("kty") == "RSA":
            try:
                keys[str(jwk["kid"])] = RSAAlgorithm.from_jwk(json.dumps(jwk))
            except (ValueError, KeyError, TypeError):
                continue
    return keys


async def fetch_jwks(url: str) -> dict[str, Any]:
    """GET a JWKS with the 5 s timeout; Unavailable on any failure."""
    try:
        timeout = aiohttp.ClientTimeout(total=JWKS_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as http, http.get(url) as r:
            if r.status != 200:
                raise Unavailable(f"JWKS unavailable: HTTP {r.status}")
            doc = await r.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise Unavailable(f"JWKS unavailable: {type(exc).__name__}") from None
    return rsa_keys(doc)


class JwksCache:
    """One key set with a TTL and one (rate-limited) refresh on an unknown kid."""

    def __init__(self, ttl_secs: float) -> None:
        self.ttl = ttl_secs
        self.keys: dict[str, Any] = {}
        self._fetched_at = 0.0
        self._last_refresh = 0.0
        self._lock = asyncio.Lock()

    async def _fetch(self, url: str) -> None:
        self.keys = await fetch_jwks(url)
        self._fetched_at = self._last_refresh = time.monotonic()

    async def ensure(self, url: str) -> None:
        """Fetch when empty or stale; Unavailable when the fetch fails."""
        async with self._lock:
            if not self.keys or time.monotonic() - self._fetched_at > self.ttl:
                await self._fetch(url)

    async def key(self, url: str, kid: str) -> Any | None:
        """The key of `kid` (refreshing once when unknown), or None."""
        await self.ensure(url)
        async with self._lock:
            if kid not in self.keys and time.monotonic() - self._last_refresh >= REFRESH_MIN_INTERVAL:
                await self._fetch(url)
            return self.keys.get(kid)
