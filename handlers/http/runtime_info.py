"""GET /api/runtime/shard-info (server-contract §9.8): pure math, no database, no NATS."""

from __future__ import annotations

from aiohttp import web

from app.errors import BadRequest
from app.sharding import HASH_FUNCTION, MAX_SHARD_COUNT, SEED, shard_for
from handlers.http.common import int_param, json_response
from handlers.http.keys import deps_of

routes = web.RouteTableDef()


@routes.get("/api/runtime/shard-info")
async def get_shard_info(request: web.Request) -> web.Response:
    deps = deps_of(request)
    execution_id = int_param(request.query.get("execution_id"), "execution_id", where="query")
    raw = request.query.get("shard_count")
    if raw is None or raw.strip() == "":
        raise BadRequest("shard_count is required (1..=1024)")
    try:
        shard_count = int(raw.strip())
    except ValueError:
        raise BadRequest(f'shard_count "{raw}" is not a valid u32') from None
    if shard_count < 1:
        raise BadRequest("shard_count must be >= 1")
    if shard_count > MAX_SHARD_COUNT:
        raise BadRequest(f"shard_count {shard_count} exceeds practical maximum {MAX_SHARD_COUNT}")
    return json_response(
        {
            "execution_id": execution_id,
            "shard_count": shard_count,
            "shard_index": shard_for(execution_id, shard_count),
            "source": "noetl-server",
            "hash_function": HASH_FUNCTION,
            "seed": SEED,
            "server_config": {
                "shard_index": deps.settings.server.shard_index,
                "shard_count": deps.settings.server.shard_count,
            },
        }
    )
