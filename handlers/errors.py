"""The one table from error class to HTTP status (and to NATS ack/nak), and the project's error body."""

from __future__ import annotations

import asyncio
import json
import logging
from enum import StrEnum
from typing import Any

import asyncpg
from aiohttp import web

from app.errors import NoetlError, Unavailable
from handlers.http.keys import DEBUG

log = logging.getLogger(__name__)

_DB_DOWN = (
    OSError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
)


def error_body(status: int, message: str, detail: Any = None) -> dict[str, Any]:
    """{"detail": ..., "error": <message>, "status": <code>} (server-contract §2)."""
    return {"detail": message if detail is None else detail, "error": message, "status": status}


def error_response(
    status: int,
    message: str,
    detail: Any = None,
    retry_after: float | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A JSON error response in the project's shape."""
    hdrs = dict(headers or {})
    if retry_after is not None:
        hdrs["Retry-After"] = str(int(retry_after) if float(retry_after).is_integer() else retry_after)
    return web.Response(
        status=status,
        text=json.dumps(error_body(status, message, detail)),
        content_type="application/json",
        headers=hdrs,
    )


def translate(exc: BaseException) -> NoetlError | None:
    """Driver errors become application errors at the boundary."""
    if isinstance(exc, NoetlError):
        return exc
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return Unavailable("database pool saturated; retry later", code="pool_saturated", retry_after=1)
    if isinstance(exc, _DB_DOWN) or isinstance(exc, asyncpg.PostgresConnectionError):
        return Unavailable("database unavailable; retry later", code="db_unavailable", retry_after=2)
    if isinstance(exc, asyncpg.QueryCanceledError):
        return Unavailable("database query timed out; retry later", code="db_timeout", retry_after=2)
    return None


def noetl_error_response(err: NoetlError) -> web.Response:
    """Render an application error; coded errors carry {code, message} in detail."""
    detail = err.detail
    if detail is None and err.code:
        detail = {"code": err.code, "message": err.message, **err.extra}
    retry_after = err.retry_after
    if retry_after is None and err.status == 503:
        retry_after = 1
    return error_response(err.status, err.message, detail, retry_after)


class NatsAction(StrEnum):
    ACK = "ack"
    NAK = "nak"
    REJECT = "reject"


def nats_action(exc: BaseException) -> NatsAction:
    """Retryable errors are redelivered; permanent ones are rejected; duplicates are acked."""
    err = translate(exc)
    if err is None:
        return NatsAction.NAK
    if err.status == 409:
        return NatsAction.ACK
    return NatsAction.NAK if err.retryable else NatsAction.REJECT


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every error leaves as the project's JSON error body."""
    debug = DEBUG in request.app and request.app[DEBUG]
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        reason = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason
        if exc.status == 404:
            reason = f"route not found: {request.method} {request.path}"
        elif exc.status == 405:
            reason = f"method {request.method} not allowed on {request.path}"
        elif exc.status == 413:
            reason = "request body too large"
        return error_response(
            exc.status,
            reason or "error",
            headers={k: v for k, v in exc.headers.items() if k.lower() in {"allow", "retry-after"}},
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        err = translate(exc)
        if err is not None:
            if err.status >= 500:
                log.warning("request failed", extra={"path": request.path, "error": err.message})
            return noetl_error_response(err)
        log.exception("unhandled error", extra={"path": request.path, "method": request.method})
        message = "internal server error"
        if debug:
            message = f"internal server error: {type(exc).__name__}: {exc}"
        return error_response(500, message)
