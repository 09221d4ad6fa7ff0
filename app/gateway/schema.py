"""The GraphQL schema (gateway.md §8.1) with strawberry: exact type names, enum values and the JSON scalar."""

from __future__ import annotations

import enum
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON
from strawberry.types import Info

from app.gateway.core import Gateway, GraphQLFailure
from app.gateway.metrics import VERSION
from app.gateway.sessions import Session


@strawberry.enum(name="ExecutableResourceKind")
class ExecutableResourceKind(enum.Enum):
    playbook = "playbook"
    agent = "agent"


@strawberry.type(name="Execution")
class Execution:
    id: str
    execution_id: str
    request_id: str | None = None
    name: str | None = None
    path: str | None = None
    status: str | None = None
    text_output: str | None = None
    result: JSON | None = None
    error: str | None = None
    start_time: str | None = None
    end_time: str | None = None


def _execution(d: dict[str, Any]) -> Execution:
    return Execution(
        id=d["id"],
        execution_id=d["executionId"],
        request_id=d.get("requestId"),
        name=d.get("name"),
        path=d.get("path"),
        status=d.get("status"),
        text_output=None,
        result=d.get("result"),
        error=d.get("error"),
        start_time=d.get("startTime"),
        end_time=d.get("endTime"),
    )


def _ctx(info: Info) -> tuple[Gateway, Session, str]:
    c = info.context
    return c["gateway"], c["session"], c["token"]


def _fail(exc: GraphQLFailure) -> GraphQLError:
    return GraphQLError(str(exc), extensions={"code": exc.code})


@strawberry.type(name="QueryRoot")
class QueryRoot:
    @strawberry.field
    def health(self) -> str:
        return "ok"

    @strawberry.field
    def version(self) -> str:
        return VERSION

    @strawberry.field
    async def execution(self, info: Info, id: strawberry.ID) -> Execution | None:
        gw, _, token = _ctx(info)
        try:
            found = await gw.execution(token, str(id))
        except GraphQLFailure as exc:
            raise _fail(exc) from None
        return _execution(found) if found is not None else None


@strawberry.type(name="MutationRoot")
class MutationRoot:
    @strawberry.mutation
    async def execute_playbook(
        self,
        info: Info,
        name: str,
        variables: JSON | None = None,
        resource_kind: ExecutableResourceKind | None = None,
        client_id: str | None = None,
    ) -> Execution:
        gw, session, token = _ctx(info)
        kind = (resource_kind or ExecutableResourceKind.playbook).value
        try:
            out = await gw.execute_playbook(session, token, name, variables, kind, client_id)
        except GraphQLFailure as exc:
            raise _fail(exc) from None
        return _execution(out)


schema = strawberry.Schema(query=QueryRoot, mutation=MutationRoot)
