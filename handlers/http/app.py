"""The control-plane aiohttp application: middlewares and every route module."""

from __future__ import annotations

from aiohttp import web

from app.bootstrap import Deps
from handlers.errors import error_middleware
from handlers.http import (
    auth_internal,
    catalog,
    commands_events,
    credentials,
    executions,
    health,
    ingress_internal,
    internal_events,
    internal_ops,
    internal_outbox,
    keychain,
    runtime_info,
    variables,
    wallet_internal,
    worker_pool,
)
from handlers.http.internal_auth import internal_gate_middleware
from handlers.http.keys import DEBUG, DEPS
from handlers.http.middleware import observe_middleware

MAX_BODY = 64 * 1024 * 1024  # PUT /api/result allows 64 MiB; other routes enforce 2 MiB themselves

ROUTE_MODULES = [
    health,
    runtime_info,
    internal_events,
    internal_ops,
    internal_outbox,
    worker_pool,
    catalog,
    executions,
    commands_events,
    variables,
    credentials,
    keychain,
    wallet_internal,
    auth_internal,
    ingress_internal,
]


def build_app(deps: Deps) -> web.Application:
    """Build the API application around already-opened dependencies."""
    app = web.Application(
        middlewares=[observe_middleware, error_middleware, internal_gate_middleware], client_max_size=MAX_BODY
    )
    app[DEPS] = deps
    app[DEBUG] = deps.settings.server.debug
    for module in ROUTE_MODULES:
        app.add_routes(module.routes)
    for extra in deps.extras.get("route_installers", []):
        extra(app)
    if not deps.settings.server.disable_metrics:
        health.add_metrics_route(app)
    return app
