"""The gateway aiohttp application: CORS first, JSON errors, every gateway route."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import generate_latest

from app.gateway.core import Gateway
from handlers.gateway import auth_routes, callbacks, events, graphql_view, ingress, proxy
from handlers.gateway.common import GATEWAY, cors_middleware, error_middleware, gw_of

routes = web.RouteTableDef()


@routes.get("/health")
async def get_health(_: web.Request) -> web.Response:
    return web.Response(text="ok", content_type="text/plain")


@routes.get("/metrics")
async def get_metrics(request: web.Request) -> web.Response:
    body = generate_latest(gw_of(request).metrics.registry)
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


def build_gateway_app(gw: Gateway) -> web.Application:
    """The application around an already-built Gateway."""
    app = web.Application(middlewares=[cors_middleware, error_middleware], client_max_size=11 * 1024 * 1024)
    app[GATEWAY] = gw
    app.add_routes(routes)
    app.add_routes(auth_routes.routes)
    app.add_routes(callbacks.routes)
    app.add_routes(events.routes)
    app.add_routes(ingress.routes)
    graphql_view.install(app)
    proxy.install(app)
    return app
