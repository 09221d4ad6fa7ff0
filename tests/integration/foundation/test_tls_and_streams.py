"""TLS / mTLS listener modes (seed mode table) and the memory-storage stream rule (server-contract §12.2)."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import aiohttp
import nats
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.devstack.nats import EmbeddedNats
from app.tls import server_ssl_context
from tests.support.server import make_settings, running_api
from tests.support.wait import eventually

pytestmark = pytest.mark.integration


def _cert(name: str, issuer_key=None, issuer_name=None, ca: bool = False):  # type: ignore[no-untyped-def]
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    return key, cert


def _write(tmp: Path, stem: str, key, cert) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    kp, cp = tmp / f"{stem}.key", tmp / f"{stem}.pem"
    kp.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(cp), str(kp)


async def test_https_and_mtls(db_dsn: str, tmp_path: Path) -> None:
    ca_key, ca_cert = _cert("test-ca", ca=True)
    srv_key, srv_cert = _cert("localhost", ca_key, ca_cert.subject)
    cli_key, cli_cert = _cert("worker", ca_key, ca_cert.subject)
    ca_path, _ = _write(tmp_path, "ca", ca_key, ca_cert)
    cert_path, key_path = _write(tmp_path, "server", srv_key, srv_cert)
    ccert, ckey = _write(tmp_path, "client", cli_key, cli_cert)
    trust = ssl.create_default_context(cafile=ca_path)

    https = make_settings(db_dsn, NOETL_TLS_CERT=cert_path, NOETL_TLS_KEY=key_path)
    ctx = server_ssl_context(https.server)
    assert ctx is not None and ctx.verify_mode == ssl.CERT_NONE
    mtls = make_settings(
        db_dsn, NOETL_TLS_CERT=cert_path, NOETL_TLS_KEY=key_path, NOETL_TLS_CLIENT_CA=ca_path
    )
    mctx = server_ssl_context(mtls.server)
    assert mctx is not None and mctx.verify_mode == ssl.CERT_REQUIRED

    from aiohttp import web

    from app.bootstrap import build_deps
    from handlers.http.app import build_app

    for settings, sctx in ((https, ctx), (mtls, mctx)):
        from contextlib import AsyncExitStack

        async with AsyncExitStack() as stack:
            deps = await build_deps(settings, stack, with_bus=False)
            runner = web.AppRunner(build_app(deps), access_log=None)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            await web.TCPSite(runner, "127.0.0.1", settings.server.port, ssl_context=sctx).start()
            url = f"https://localhost:{settings.server.port}/healthz"
            client_ctx = ssl.create_default_context(cafile=ca_path)
            if sctx is mctx:
                with pytest.raises((aiohttp.ClientError, ssl.SSLError, OSError)):
                    async with aiohttp.ClientSession() as http, http.get(url, ssl=trust) as r:
                        await r.read()
                client_ctx.load_cert_chain(ccert, ckey)
            async with aiohttp.ClientSession() as http, http.get(url, ssl=client_ctx) as r:
                assert r.status == 200


async def test_memory_storage_stream_is_not_ready(db_dsn: str, own_nats: EmbeddedNats) -> None:
    nc = await nats.connect(own_nats.url)
    js = nc.jetstream()
    await js.add_stream(name="NOETL_COMMANDS", subjects=["noetl.commands.>"], storage="memory")
    await nc.close()
    async with running_api(make_settings(db_dsn, own_nats.url)) as api:

        async def not_ready():  # type: ignore[no-untyped-def]
            status, body = await api.get("/readyz")
            return body if status == 503 else None

        body = await eventually(not_ready, timeout=10, what="503 for a memory-storage stream")
        assert "memory storage" in body["error"] and "NOETL_COMMANDS" in body["error"]
