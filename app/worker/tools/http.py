"""The `http` tool (playbook-dsl.md §2.3.2): one request, result {status_code, headers, data, body}."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from app.worker.tools._auth import auth_headers, resolve_auth
from app.worker.tools._cancel import cancellable, seconds
from app.worker.tools.base import ToolContext, ToolError

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
DEFAULT_TIMEOUT = 60.0


def _scalar(value: Any) -> str:
    # Booleans as JSON spells them: query strings are read by non-Python services.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _headers(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ToolError("http: headers must be a mapping", code="invalid_config")
    return {str(k): _scalar(v) for k, v in raw.items() if v is not None}


def _params(raw: Any) -> list[tuple[str, str]]:
    if raw is None:
        return []
    if not isinstance(raw, Mapping):
        raise ToolError("http: params must be a mapping", code="invalid_config")
    out: list[tuple[str, str]] = []
    for k, v in raw.items():
        if v is None:
            continue
        for item in v if isinstance(v, list) else [v]:
            if item is not None:
                out.append((str(k), _scalar(item)))
    return out


def _redacted(url: str) -> str:
    """The URL without query, fragment or userinfo, for error messages (query strings carry keys)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except ValueError:
        return "<invalid url>"


def _timeout(config: Mapping[str, Any], ctx: ToolContext) -> aiohttp.ClientTimeout:
    raw_spec = config.get("spec")
    spec: Mapping[str, Any] = raw_spec if isinstance(raw_spec, Mapping) else {}
    raw = config.get("timeout", config.get("timeout_seconds", spec.get("timeout")))
    if isinstance(raw, Mapping):
        connect, read = seconds(raw.get("connect")), seconds(raw.get("read"))
        total = seconds(raw.get("total"))
        if total is None and connect is not None and read is not None:
            total = connect + read
        return aiohttp.ClientTimeout(total=total, sock_connect=connect, sock_read=read)
    total = seconds(raw) or ctx.timeout_seconds or DEFAULT_TIMEOUT
    return aiohttp.ClientTimeout(total=total)


def _body(config: Mapping[str, Any]) -> dict[str, Any]:
    """aiohttp request keywords for the body: json, legacy data/body/payload, or form."""
    if config.get("json") is not None:
        return {"json": config["json"]}
    if config.get("form") is not None:
        form = config["form"]
        if not isinstance(form, Mapping):
            raise ToolError("http: form must be a mapping", code="invalid_config")
        return {"data": {str(k): _scalar(v) for k, v in form.items() if v is not None}}
    for key in ("data", "body", "payload"):
        value = config.get(key)
        if value is None:
            continue
        if isinstance(value, str | bytes):
            return {"data": value}
        return {"json": value}
    return {}


def _decode(raw: bytes, response_type: str) -> Any:
    if response_type == "binary":
        return base64.b64encode(raw).decode("ascii")
    text = raw.decode("utf-8", errors="replace")
    if response_type == "text":
        return text
    if not text.strip():
        return None if response_type == "json" else text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _response_headers(resp: aiohttp.ClientResponse) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in resp.headers.items():
        key = k.lower()
        out[key] = f"{out[key]}, {v}" if key in out else v
    return out


async def run(config: dict[str, Any], ctx: ToolContext) -> Any:
    """Send the request; non-2xx raises ToolError with the response attached, transport errors without."""
    url = config.get("url") or config.get("endpoint")
    if not isinstance(url, str) or not url.strip():
        raise ToolError("http: url is required", code="invalid_config")
    method = str(config.get("method") or "GET").upper()
    if method not in METHODS:
        raise ToolError(f"http: unsupported method {method}", code="invalid_config")
    headers = _headers(config.get("headers"))
    credential = await resolve_auth(config.get("auth"), ctx.credentials)
    headers.update(auth_headers(credential))
    del credential
    response_type = str(config.get("response_type") or "").lower()
    verify = config.get("verify_ssl", True) not in (False, "false", "False", 0)
    timeout = _timeout(config, ctx)
    shown = f"{method} {_redacted(url)}"

    async def send() -> dict[str, Any]:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(
                method,
                url,
                headers=headers,
                params=_params(config.get("params")),
                allow_redirects=config.get("follow_redirects", True) is not False,
                ssl=verify,
                **_body(config),
            ) as resp,
        ):
            raw = await resp.read()
            data = _decode(raw, response_type)
            return {
                "status_code": resp.status,
                "headers": _response_headers(resp),
                "data": data,
                "body": data,
            }

    try:
        result = await cancellable(send(), ctx)
    except TimeoutError:
        raise ToolError(f"http: {shown} timed out", code="timeout") from None
    except aiohttp.InvalidURL:
        raise ToolError(f"http: invalid url {_redacted(url)}", code="invalid_config") from None
    except aiohttp.ClientError as exc:
        raise ToolError(f"http: {shown} failed: {type(exc).__name__}", code="transport") from None
    except OSError as exc:
        raise ToolError(
            f"http: {shown} failed: {exc.strerror or type(exc).__name__}", code="transport"
        ) from None
    status = result["status_code"]
    if not 200 <= status < 300:
        raise ToolError(f"http: {shown} answered {status}", data=result, code=f"http_{status}")
    return result
