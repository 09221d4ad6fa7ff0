"""The http tool against a local aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from app.devstack.ports import free_port
from app.worker.tools import http
from app.worker.tools.base import ToolCancelled, ToolError
from tests.support.tool_context import StaticCredentials, make_ctx

pytestmark = pytest.mark.integration


@dataclass
class Peer:
    url: str = ""
    seen: list[dict[str, Any]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    slow_started: asyncio.Event = field(default_factory=asyncio.Event)
    client_gone: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    p = Peer()

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        p.seen.append(
            {
                "method": request.method,
                "query": list(request.query.items()),
                "headers": dict(request.headers),
                "body": body,
                "content_type": request.content_type,
            }
        )
        return web.json_response({"method": request.method, "n": len(p.seen)}, headers={"X-Reply": "yes"})

    async def text(request: web.Request) -> web.Response:
        return web.Response(text="plain words")

    async def missing(request: web.Request) -> web.Response:
        return web.json_response({"error": "no such thing"}, status=404)

    async def slow(request: web.Request) -> web.Response:
        p.slow_started.set()
        # Bounded watch for the client going away (aiohttp does not cancel handlers on disconnect).
        for _ in range(600):
            if request.transport is None or request.transport.is_closing():
                p.client_gone.set()
                break
            try:
                await asyncio.wait_for(p.release.wait(), timeout=0.05)
                break
            except TimeoutError:
                continue
        return web.json_response({"late": True})

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/echo")

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/text", text)
    app.router.add_get("/missing", missing)
    app.router.add_get("/slow", slow)
    app.router.add_get("/redirect", redirect)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    p.url = f"http://127.0.0.1:{port}"
    yield p
    p.release.set()
    await runner.cleanup()


async def test_get_with_params_and_headers(peer: Peer) -> None:
    cfg = {
        "url": f"{peer.url}/echo",
        "params": {"page": 2, "full": True, "skip": None, "q": "a b", "tags": ["x", "y"]},
        "headers": {"X-Num": 7, "X-Null": None},
    }
    result = await http.run(cfg, make_ctx())
    assert result["status_code"] == 200
    assert result["data"] == {"method": "GET", "n": 1} and result["body"] == result["data"]
    assert result["headers"]["x-reply"] == "yes" and "content-type" in result["headers"]
    seen = peer.seen[0]
    assert seen["query"] == [("page", "2"), ("full", "true"), ("q", "a b"), ("tags", "x"), ("tags", "y")]
    assert seen["headers"]["X-Num"] == "7" and "X-Null" not in seen["headers"]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_json_body_methods(peer: Peer, method: str) -> None:
    result = await http.run(
        {"url": f"{peer.url}/echo", "method": method.lower(), "json": {"a": 1}}, make_ctx()
    )
    assert result["data"]["method"] == method
    assert peer.seen[0]["body"] == b'{"a": 1}' and peer.seen[0]["content_type"] == "application/json"


async def test_legacy_string_body_is_raw_and_object_is_json(peer: Peer) -> None:
    await http.run({"url": f"{peer.url}/echo", "method": "POST", "data": "raw text"}, make_ctx())
    await http.run({"url": f"{peer.url}/echo", "method": "POST", "payload": {"k": [1]}}, make_ctx())
    assert peer.seen[0]["body"] == b"raw text"
    assert peer.seen[1]["body"] == b'{"k": [1]}' and peer.seen[1]["content_type"] == "application/json"


async def test_form_body(peer: Peer) -> None:
    await http.run({"url": f"{peer.url}/echo", "method": "POST", "form": {"a": 1, "b": "x y"}}, make_ctx())
    assert peer.seen[0]["content_type"] == "application/x-www-form-urlencoded"
    assert peer.seen[0]["body"] == b"a=1&b=x+y"


async def test_text_and_response_types(peer: Peer) -> None:
    assert (await http.run({"url": f"{peer.url}/text"}, make_ctx()))["data"] == "plain words"
    as_text = await http.run({"url": f"{peer.url}/echo", "response_type": "text"}, make_ctx())
    assert isinstance(as_text["data"], str) and '"method"' in as_text["data"]
    binary = await http.run({"url": f"{peer.url}/text", "response_type": "binary"}, make_ctx())
    assert binary["data"] == "cGxhaW4gd29yZHM="


async def test_redirects_followed_unless_disabled(peer: Peer) -> None:
    followed = await http.run({"url": f"{peer.url}/redirect"}, make_ctx())
    assert followed["status_code"] == 200 and followed["data"]["method"] == "GET"
    with pytest.raises(ToolError) as err:
        await http.run({"url": f"{peer.url}/redirect", "follow_redirects": False}, make_ctx())
    assert err.value.data["status_code"] == 302


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("tok", "Bearer s3cret-token"),
        ("basic", "Basic YWxpY2U6cHc="),
    ],
)
async def test_auth_header_from_credential(peer: Peer, alias: str, expected: str) -> None:
    creds = StaticCredentials(
        {
            "tok": {"type": "bearer", "data": {"token": "s3cret-token"}},
            "basic": {"type": "basic", "data": {"username": "alice", "password": "pw"}},
        }
    )
    await http.run({"url": f"{peer.url}/echo", "auth": alias}, make_ctx(credentials=creds))
    assert peer.seen[0]["headers"]["Authorization"] == expected


async def test_api_key_structured_auth(peer: Peer) -> None:
    creds = StaticCredentials({"k": {"type": "secret", "data": {"api_key": "abc"}}})
    cfg = {"url": f"{peer.url}/echo", "auth": {"type": "api_key", "credential": "k"}}
    await http.run(cfg, make_ctx(credentials=creds))
    assert peer.seen[0]["headers"]["X-API-Key"] == "abc"


async def test_non_2xx_is_an_error_with_data(peer: Peer) -> None:
    with pytest.raises(ToolError) as err:
        await http.run({"url": f"{peer.url}/missing?api_key=SECRET"}, make_ctx())
    assert err.value.data["status_code"] == 404
    assert err.value.data["data"] == {"error": "no such thing"} == err.value.data["body"]
    assert "404" in err.value.message and "SECRET" not in err.value.message


async def test_timeout_is_an_error_without_data(peer: Peer) -> None:
    started = time.monotonic()
    with pytest.raises(ToolError) as err:
        await http.run({"url": f"{peer.url}/slow", "timeout": 0.3}, make_ctx())
    assert err.value.code == "timeout" and err.value.data is None
    assert time.monotonic() - started < 5


async def test_spec_timeout_read(peer: Peer) -> None:
    with pytest.raises(ToolError) as err:
        await http.run(
            {"url": f"{peer.url}/slow", "spec": {"timeout": {"connect": 2, "read": 0.3}}}, make_ctx()
        )
    assert err.value.code == "timeout"


async def test_connection_refused_is_a_transport_error() -> None:
    with pytest.raises(ToolError) as err:
        await http.run({"url": f"http://127.0.0.1:{free_port()}/x"}, make_ctx())
    assert err.value.code == "transport" and err.value.data is None


async def test_cancellation_aborts_the_request(peer: Peer) -> None:
    ctx = make_ctx()
    task = asyncio.create_task(http.run({"url": f"{peer.url}/slow", "timeout": 60}, ctx))
    await asyncio.wait_for(peer.slow_started.wait(), timeout=10)
    ctx.cancelled.set()
    with pytest.raises(ToolCancelled):
        await asyncio.wait_for(task, timeout=5)
    await asyncio.wait_for(peer.client_gone.wait(), timeout=5)  # the request was aborted, not abandoned


async def test_missing_url_is_invalid() -> None:
    with pytest.raises(ToolError) as err:
        await http.run({"method": "GET"}, make_ctx())
    assert err.value.code == "invalid_config"


def _self_signed(tmp_path: Any) -> Any:
    import datetime as dt
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "c.pem", tmp_path / "k.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_path, key_path)
    return ctx


async def test_verify_ssl(tmp_path: Any) -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"tls": True})

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=_self_signed(tmp_path))
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        url = f"https://127.0.0.1:{port}/"
        with pytest.raises(ToolError) as err:
            await http.run({"url": url}, make_ctx())
        assert err.value.code == "transport"
        assert (await http.run({"url": url, "verify_ssl": False}, make_ctx()))["data"] == {"tls": True}
    finally:
        await runner.cleanup()
