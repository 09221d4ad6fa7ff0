"""AWS Signature Version 4 for JSON POSTs, hand-written per secrets.md §5.5."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

ALGORITHM = "AWS4-HMAC-SHA256"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """HMAC chain ``AWS4<secret>`` → date → region → service → ``aws4_request``."""
    k = _hmac(("AWS4" + secret_key).encode("utf-8"), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def sign_json_post(
    *,
    host: str,
    body: bytes,
    region: str,
    service: str,
    target: str,
    access_key: str,
    secret_key: str,
    session_token: str | None,
    now: datetime,
    content_type: str = "application/x-amz-json-1.1",
) -> dict[str, str]:
    """Headers (incl. Authorization) for ``POST /`` with a JSON body; ``now`` must be UTC."""
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    body_hash = sha256_hex(body)
    headers = {
        "content-type": content_type,
        "host": host,
        "x-amz-content-sha256": body_hash,
        "x-amz-date": amz_date,
        "x-amz-target": target,
    }
    if session_token:
        headers["x-amz-security-token"] = session_token
    names = sorted(headers)
    canonical_headers = "".join(f"{n}:{headers[n]}\n" for n in names)
    signed = ";".join(names)
    canonical_request = f"POST\n/\n\n{canonical_headers}\n{signed}\n{body_hash}"
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{sha256_hex(canonical_request.encode('utf-8'))}"
    signature = hmac.new(
        signing_key(secret_key, date, region, service), string_to_sign.encode("utf-8"), hashlib.sha256
    ).hexdigest()
    out = {
        "Authorization": (
            f"{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
        ),
        "Content-Type": content_type,
        "X-Amz-Date": amz_date,
        "X-Amz-Target": target,
        "X-Amz-Content-Sha256": body_hash,
    }
    if session_token:
        out["X-Amz-Security-Token"] = session_token
    return out
