"""Listener TLS from NOETL_TLS_CERT / NOETL_TLS_KEY / NOETL_TLS_CLIENT_CA (seed mode table)."""

from __future__ import annotations

import ssl

from app.config import ServerSettings


def server_ssl_context(s: ServerSettings) -> ssl.SSLContext | None:
    """None for plain HTTP; HTTPS with cert+key; mTLS when a client CA is also set."""
    if not s.tls_cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(s.tls_cert, s.tls_key)
    if s.tls_client_ca:
        ctx.load_verify_locations(cafile=s.tls_client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def mode(s: ServerSettings) -> str:
    """'http', 'https' or 'mtls'."""
    if not s.tls_cert:
        return "http"
    return "mtls" if s.tls_client_ca else "https"
