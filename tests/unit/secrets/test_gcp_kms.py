"""GcpKms wrap/unwrap/current version against a local Cloud KMS fake (secrets.md §1.5, §12.2 case 29)."""

from __future__ import annotations

import base64
import json

import pytest
from aiohttp import web

from app.secrets.envelope import EnvelopeCipher, Rewrapped, Skipped
from app.secrets.errors import EncryptionError
from app.secrets.keys import GcpKms

KEY = "projects/p/locations/l/keyRings/r/cryptoKeys/k"


def _fake(state: dict):  # type: ignore[no-untyped-def]
    async def h(req: web.Request) -> web.Response:
        if req.path == "/token":
            assert req.headers["Metadata-Flavor"] == "Google"
            return web.json_response({"access_token": "kms-tok", "expires_in": 3600})
        if req.headers.get("Authorization") != "Bearer kms-tok":
            return web.Response(status=401, text="no")
        path = req.path.removeprefix("/v1/")
        if req.method == "GET" and path == KEY:
            return web.json_response(
                {"name": KEY, "primary": {"name": f"{KEY}/cryptoKeyVersions/{state['v']}"}}
            )
        body = json.loads(await req.read())
        if path == f"{KEY}:encrypt":
            # Fake "encryption": version tag + reversed bytes.
            pt = base64.b64decode(body["plaintext"])
            ct = state["v"].encode() + b"|" + pt[::-1]
            return web.json_response(
                {"name": f"{KEY}/cryptoKeyVersions/{state['v']}", "ciphertext": base64.b64encode(ct).decode()}
            )
        if path == f"{KEY}:decrypt":
            ct = base64.b64decode(body["ciphertext"])
            return web.json_response({"plaintext": base64.b64encode(ct.split(b"|", 1)[1][::-1]).decode()})
        return web.Response(status=404, text="not found")

    return h


async def test_gcp_kms_round_trip_and_rotation(serve) -> None:
    state = {"v": "3"}
    srv = await serve(_fake(state))
    now = [0.0]
    kms = GcpKms(KEY, endpoint=srv.url + "/v1", token_url=srv.url + "/token", clock=lambda: now[0])
    cipher = EnvelopeCipher(kms)
    stored = await cipher.seal({"a": "b"})
    rec = json.loads(stored)["dek"]
    assert (rec["p"], rec["kid"], rec["kv"]) == ("gcp-kms", KEY, "3")
    assert await cipher.open(stored) == {"a": "b"}
    assert await kms.current_key_version() == "3"
    assert isinstance(await cipher.rewrap(stored), Skipped)
    state["v"] = "4"
    assert await kms.current_key_version() == "3"  # cached 300 s
    now[0] = 301.0
    out = await cipher.rewrap(stored)
    assert isinstance(out, Rewrapped) and (out.old_key_version, out.new_key_version) == ("3", "4")
    assert json.loads(out.new_storage_string)["ct"] == json.loads(stored)["ct"]
    assert await cipher.open(out.new_storage_string) == {"a": "b"}
    assert [r.path for r in srv.requests].count("/token") == 1
    await kms.close()


async def test_gcp_kms_errors(serve) -> None:
    async def h(req: web.Request) -> web.Response:
        if req.path == "/token":
            return web.json_response({"access_token": "t", "expires_in": 3600})
        return web.Response(status=403, text="denied " + "x" * 300)

    srv = await serve(h)
    kms = GcpKms(KEY, endpoint=srv.url, token_url=srv.url + "/token")
    cipher = EnvelopeCipher(kms)
    with pytest.raises(EncryptionError) as ei:
        await cipher.seal({"a": 1})
    assert str(ei.value) == "kms encrypt: HTTP 403 denied " + "x" * 193
    assert await kms.current_key_version() == "unknown"
    await kms.close()
