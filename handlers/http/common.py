"""Request parsing shared by routes: content type, size limits, JSON, pydantic validation, ids."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from app.errors import BadRequest, NoetlError, PayloadTooLarge, UnsupportedMediaType

M = TypeVar("M", bound=BaseModel)

DEFAULT_BODY_LIMIT = 2 * 1024 * 1024


class RequestValidationError(NoetlError):
    """Body or parameters failed validation: detail is a list of {type, loc, msg, input}."""


def validation_detail(exc: ValidationError, prefix: str = "body") -> list[dict[str, Any]]:
    """Pydantic errors in the FastAPI-like shape real clients already parse."""
    out = []
    for e in exc.errors(include_url=False):
        inp = e.get("input")
        try:
            json.dumps(inp)
        except (TypeError, ValueError):
            inp = str(inp)
        out.append({"type": e["type"], "loc": [prefix, *e["loc"]], "msg": e["msg"], "input": inp})
    return out


def invalid(detail: list[dict[str, Any]], status: int = 422) -> RequestValidationError:
    """A validation error with a readable first message."""
    first = detail[0] if detail else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"][1:]) or "body"
    err = RequestValidationError(f"{where}: {first['msg']}", detail=detail)
    err.status = status
    return err


async def read_json_body(request: web.Request, limit: int = DEFAULT_BODY_LIMIT, required: bool = True) -> Any:
    """The JSON body; 415 without application/json, 413 above limit, 400 when unparsable."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body exceeds {limit} bytes")
    raw = await request.read()
    if len(raw) > limit:
        raise PayloadTooLarge(f"request body exceeds {limit} bytes")
    if not raw.strip():
        if required:
            raise invalid([{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}])
        return None
    if request.content_type != "application/json":
        raise UnsupportedMediaType("Content-Type must be application/json")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"malformed JSON body: {exc}") from None


async def parse_body(
    request: web.Request, model: type[M], limit: int = DEFAULT_BODY_LIMIT, required: bool = True
) -> M:
    """Parse and validate the JSON body into a pydantic model (422 on shape errors)."""
    data = await read_json_body(request, limit, required)
    if data is None:
        data = {}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(validation_detail(exc)) from None


def parse_model(data: Any, model: type[M], prefix: str = "body") -> M:
    """Validate already-parsed data into a model (422 on errors)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(validation_detail(exc, prefix)) from None


def int_param(value: str | None, name: str, *, where: str = "path") -> int:
    """A decimal i64 parameter; 400 when it is not one."""
    if value is None or value.strip() == "":
        raise BadRequest(f"{name} is required")
    try:
        n = int(value.strip())
    except ValueError:
        raise BadRequest(f'{name} "{value}" is not a valid i64') from None
    if not -(2**63) <= n < 2**63:
        raise BadRequest(f'{name} "{value}" is not a valid i64')
    return n


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """Compact JSON response."""
    return web.Response(
        text=json.dumps(data, separators=(",", ":"), default=str),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def opt_int_param(request: web.Request, name: str) -> int | None:
    """An optional i64 query parameter; 400 when present but not an i64."""
    value = request.query.get(name)
    return None if value is None else int_param(value, name, where="query")


def bool_param(request: web.Request, name: str, default: bool = False) -> bool:
    """A query flag accepting exactly ``true`` or ``false``; anything else is a 400."""
    value = request.query.get(name)
    if value is None:
        return default
    if value == "true":
        return True
    if value == "false":
        return False
    raise BadRequest(f"{name} must be 'true' or 'false' (got {value!r})")


def json_text_response(text: str, status: int = 200) -> web.Response:
    """A response whose JSON text is already serialised (exact field order, canonical values)."""
    return web.Response(text=text, status=status, content_type="application/json")
