"""Server + fake Auth0 + gateway on 127.0.0.1, wired the way a deployment wires them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from app.devstack.ports import free_port
from app.gateway.core import Gateway
from handlers.roles.gateway import running_gateway
from tests.support.auth0 import FakeAuth0, auth_env, fake_auth0, settings_with
from tests.support.server import Api, running_api


@dataclass
class Stack:
    api: Api
    gw: Gateway
    auth0: FakeAuth0
    url: str
    http: aiohttp.ClientSession

    async def login(
        self, sub: str = "auth0|alice", email: str = "alice@example.com", role: str | None = None
    ) -> str:
        """Log in through the gateway; optionally grant a role first-hand in the server's DB."""
        async with self.http.post(
            self.url + "/api/auth/login", json={"auth0_token": self.auth0.token(sub=sub, email=email)}
        ) as r:
            body = await r.json()
            assert r.status == 200, body
        if role:
            await self.api.deps.pool.execute(
                "INSERT INTO auth.user_roles (user_id, role_id) SELECT $1, role_id FROM auth.roles"
                " WHERE role_name = $2 ON CONFLICT DO NOTHING",
                body["user"]["user_id"],
                role,
            )
            # The login cached the role-less user; drop it so the next check sees the grant.
            from app.gateway.sessions import token_hash

            await self.gw.nats.delete("sessions", token_hash(body["session_token"]))
        return str(body["session_token"])

    async def post(self, path: str, json: Any = None, **kw: Any) -> tuple[int, Any]:
        async with self.http.post(self.url + path, json=json, **kw) as r:
            text = await r.text()
            try:
                import json as _j

                return r.status, _j.loads(text)
            except ValueError:
                return r.status, text

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.http.get(self.url + path, **kw) as r:
            return r.status, await r.text()


@asynccontextmanager
async def gateway_stack(
    db_dsn: str,
    nats_url: str | None,
    *,
    gateway_nats_url: str | None = None,
    background: list[tuple[str, Callable[[Any], Any]]] | None = None,
    **env: str,
) -> AsyncIterator[Stack]:
    """The real server (PostgreSQL, NATS) and a gateway pointed at it; gateway_nats_url overrides its NATS."""
    async with AsyncExitStack() as stack:
        fake = await stack.enter_async_context(fake_auth0())
        port, gport = free_port(), free_port()
        common = {
            **auth_env(fake),
            "NOETL_PORT": str(port),
            "NOETL_BASE_URL": f"http://127.0.0.1:{port}",
            "ROUTER_PORT": str(gport),
            "GATEWAY_BIND": "127.0.0.1",
            "GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{gport}",
            **env,
        }
        api = await stack.enter_async_context(
            running_api(settings_with(db_dsn, nats_url, **common), background)
        )
        gsettings = settings_with(db_dsn, gateway_nats_url or nats_url, **common)
        gw = await stack.enter_async_context(running_gateway(gsettings))
        http = await stack.enter_async_context(aiohttp.ClientSession())
        yield Stack(api, gw, fake, f"http://127.0.0.1:{gport}", http)


@asynccontextmanager
async def replica(st: Stack, db_dsn: str, nats_url: str, **env: str) -> AsyncIterator[tuple[Gateway, str]]:
    """A second gateway replica in front of the same server, sharing NATS with the first."""
    gport = free_port()
    common = {
        **auth_env(st.auth0),
        "NOETL_BASE_URL": st.api.url,
        "ROUTER_PORT": str(gport),
        "GATEWAY_BIND": "127.0.0.1",
        "GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{gport}",
        **env,
    }
    async with running_gateway(settings_with(db_dsn, nats_url, **common)) as gw:
        yield gw, f"http://127.0.0.1:{gport}"
