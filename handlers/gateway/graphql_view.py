"""POST /graphql behind the session middleware; GET /graphql serves GraphiQL without a session (§8)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from strawberry.aiohttp.views import GraphQLView

from app.gateway.schema import schema
from handlers.gateway.common import SESSION, TOKEN, authenticated, gw_of


class _View(GraphQLView):  # type: ignore[type-arg]
    async def get_context(self, request: web.Request, response: Any) -> dict[str, Any]:  # type: ignore[override]
        return {"gateway": gw_of(request), "session": request.get(SESSION), "token": request.get(TOKEN, "")}


_view = _View(schema=schema, graphql_ide="graphiql", allow_queries_via_get=False)


async def get_graphiql(request: web.Request) -> web.StreamResponse:
    return await _view(request)


@authenticated
async def post_graphql(request: web.Request) -> web.StreamResponse:
    return await _view(request)


def install(app: web.Application) -> None:
    """Add both /graphql routes."""
    app.router.add_get("/graphql", get_graphiql)
    app.router.add_post("/graphql", post_graphql)
