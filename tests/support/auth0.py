"""A local Auth0 stand-in: an RSA test key, a JWKS endpoint on 127.0.0.1 and a token minter."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from app.devstack.ports import free_port

DOMAIN = "tenant.test.auth0.local"
AUDIENCE = "noetl-test-client"


def new_key() -> rsa.RSAPrivateKey:
    """A fresh 2048-bit RSA key (test only)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class FakeAuth0:
    key: rsa.RSAPrivateKey
    url: str = ""
    kid: str = "test-kid-1"
    fetches: int = 0
    extra_keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/.well-known/jwks.json"

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in {self.kid: self.key, **self.extra_keys}.items():
            jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
            jwk.update(kid=kid, use="sig", alg="RS256")
            keys.append(jwk)
        return {"keys": keys}

    def token(
        self,
        sub: str = "auth0|alice",
        email: str = "alice@example.com",
        *,
        key: rsa.RSAPrivateKey | None = None,
        kid: str | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": f"https://{DOMAIN}/",
            "aud": AUDIENCE,
            "sub": sub,
            "email": email,
            "name": email.split("@")[0].title(),
            "email_verified": True,
            "iat": now,
            "exp": now + 3600,
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid})


def unsigned_token(**claims: Any) -> str:
    """An alg=none token carrying otherwise valid claims."""
    now = int(time.time())
    payload = {"iss": f"https://{DOMAIN}/", "aud": AUDIENCE, "sub": "auth0|mallory", "email": "m@example.com"}
    payload.update({"exp": now + 3600, **claims})

    def b64(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(payload)}."


@asynccontextmanager
async def fake_auth0() -> AsyncIterator[FakeAuth0]:
    """Serve the JWKS of a fresh test key on 127.0.0.1."""
    fake = FakeAuth0(new_key())

    async def jwks(_: web.Request) -> web.Response:
        fake.fetches += 1
        return web.json_response(fake.jwks())

    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", jwks)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()


def auth_env(fake: FakeAuth0, token: str = "internal-test-token") -> dict[str, str]:
    """Env shared by the server and the gateway for verification against the fake tenant."""
    return {
        "NOETL_INTERNAL_API_TOKEN": token,
        "NOETL_AUTH0_DOMAIN": DOMAIN,
        "NOETL_AUTH0_AUDIENCE": AUDIENCE,
        "NOETL_AUTH_JWKS_URL": fake.jwks_url,
    }


def settings_with(db_dsn: str, nats_url: str | None = None, **env: str) -> Any:
    """make_settings, with the lazily built gateway group read while the overrides are in the env."""
    import os

    from tests.support.server import make_settings

    saved = dict(os.environ)
    try:
        for key in list(os.environ):
            if key.startswith(("GATEWAY_", "ROUTER_", "CORS_")):
                os.environ.pop(key)
        os.environ.update(env)
        settings = make_settings(db_dsn, nats_url, **env)
        _ = settings.gateway
        _ = settings.gateway_ingress
        return settings
    finally:
        os.environ.clear()
        os.environ.update(saved)
