"""Internal wallet routes (secrets.md §3.4–§3.6): rotation, key status, audit query, cross-region broker.

Every path here is under /api/internal/ and passes the internal-token gate (middleware and decorator).
"""

from __future__ import annotations

import re
from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from app.errors import BadRequest
from app.services import secret_audit, wallet_rotation
from app.services.wallet_rotation import RotateIn
from app.timefmt import parse_ts
from handlers.http.common import json_response, json_text_response, opt_int_param, parse_body
from handlers.http.internal_auth import internal
from handlers.http.keys import deps_of, wallet_of

routes = web.RouteTableDef()

_OFFSET_AS_SPACE = re.compile(r" (\d\d:?\d\d)$")


class BrokerIn(BaseModel):
    """Body of POST /api/internal/cross-region/resolve (field order of §6.2)."""

    model_config = ConfigDict(extra="ignore")

    alias: str
    worker_public_key_b64: str
    worker_id: str
    execution_id: int | None = None
    parent_execution_id: int | None = None
    expected_entry_region: str
    requesting_region: str = ""


def _time_param(request: web.Request, name: str) -> datetime | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    # An unencoded '+' in the offset arrives as a space.
    text = _OFFSET_AS_SPACE.sub(r"+\1", value)
    try:
        return parse_ts(text)
    except ValueError:
        raise BadRequest(f"{name} must be an RFC 3339 timestamp (got {value!r})") from None


@routes.post("/api/internal/wallet/rotate-kek")
@internal
async def rotate_kek(request: web.Request) -> web.Response:
    body = await parse_body(request, RotateIn, required=False)
    wallet = wallet_of(request)
    out = await wallet_rotation.rotate(deps_of(request).pool, wallet.cipher(), wallet.wallet.metrics, body)
    return json_response(out)


@routes.get("/api/internal/wallet/key-status")
@internal
async def key_status(request: web.Request) -> web.Response:
    return json_response(await wallet_rotation.key_status(deps_of(request).pool))


@routes.get("/api/internal/secret-audit")
@internal
async def query_audit(request: web.Request) -> web.Response:
    q = request.query
    out = await secret_audit.query(
        deps_of(request).pool,
        credential=q.get("credential"),
        execution_id=opt_int_param(request, "execution_id"),
        outcome=q.get("outcome"),
        since=_time_param(request, "from"),
        until=_time_param(request, "to"),
        limit=opt_int_param(request, "limit"),
    )
    return json_response(out)


@routes.post("/api/internal/cross-region/resolve")
@internal
async def broker_resolve(request: web.Request) -> web.Response:
    body = await parse_body(request, BrokerIn)
    wallet = wallet_of(request)
    wallet.cipher()
    envelope = await wallet.sealed.serve_broker(**body.model_dump())
    return json_text_response(envelope)
