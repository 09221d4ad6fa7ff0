"""Dynamic providers: AWS STS, Azure AAD, GCP IAM Credentials (secrets.md §5.7, §12.6 case 67)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from aiohttp import web

from app.config.secrets import ProviderSettings
from app.secrets.errors import SecretConfigError
from app.secrets.providers import azure_oauth, gcp_iam, sts
from app.secrets.providers.base import SecretRef
from app.secrets.providers.dynamic_common import form_encode, parse_rfc3339

ROLE = "arn:aws:iam::123:role/test-role"


def _ps(**kw: object) -> ProviderSettings:
    return ProviderSettings.model_validate(kw)


def test_percent_encoding() -> None:
    assert form_encode([("RoleArn", ROLE)]) == "RoleArn=arn%3Aaws%3Aiam%3A%3A123%3Arole%2Ftest-role"
    assert form_encode([("x", "a b+c~_.-")]) == "x=a%20b%2Bc~_.-"


def test_rfc3339_parsing() -> None:
    assert parse_rfc3339("2026-06-06T21:00:00Z", "t") == datetime(2026, 6, 6, 21, tzinfo=UTC)
    assert parse_rfc3339("2026-06-06T21:00:00.123456789Z", "t").microsecond == 123456
    with pytest.raises(SecretConfigError):
        parse_rfc3339("soon", "t")


XML = """<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <AccessKeyId> ASIAXML </AccessKeyId>
      <SecretAccessKey>xml-secret</SecretAccessKey>
      <SessionToken>xml-session</SessionToken>
      <Expiration>2026-06-06T22:00:00Z</Expiration>
    </Credentials>
    <AssumedRoleUser><AssumedRoleId>AROA:noetl-server</AssumedRoleId></AssumedRoleUser>
  </AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>"""

JSON_BODY = json.dumps(
    {
        "AssumeRoleWithWebIdentityResponse": {
            "AssumeRoleWithWebIdentityResult": {
                "Credentials": {
                    "AccessKeyId": "ASIAJSON",
                    "SecretAccessKey": "json-secret",
                    "SessionToken": "json-session",
                    "Expiration": 1780783200.5,
                },
                "AssumedRoleUser": {"AssumedRoleId": "AROA:json"},
            }
        }
    }
)


@pytest.mark.parametrize("mode", ["xml", "json"])
async def test_sts(serve, tmp_path: Path, mode: str) -> None:
    async def h(req: web.Request) -> web.Response:
        if req.headers.get("content-type") != "application/x-www-form-urlencoded":
            return web.Response(status=400)
        form = dict(parse_qsl((await req.read()).decode()))
        if (
            form.get("WebIdentityToken") != "web-id-token"
            or form.get("Action") != "AssumeRoleWithWebIdentity"
        ):
            return web.Response(status=403, text="AccessDenied")
        return web.Response(text=XML if mode == "xml" else JSON_BODY)

    srv = await serve(h)
    tf = tmp_path / "token"
    tf.write_text("web-id-token\n")
    p = sts.build(
        _ps(
            AWS_WEB_IDENTITY_TOKEN_FILE=str(tf),
            NOETL_AWS_STS_ENDPOINT_OVERRIDE=srv.url + "/",
            AWS_ROLE_ARN="arn:aws:iam::1:role/default",
        ),
        "",
    )
    v = await p.fetch(SecretRef(f"{ROLE}#sess1"))
    body = srv.requests[0].body.decode()
    assert body == (
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123%3Arole%2Ftest-role"
        "&RoleSessionName=sess1&DurationSeconds=3600&WebIdentityToken=web-id-token"
    )
    assert "Authorization" not in srv.requests[0].headers  # unsigned
    doc = json.loads(v.value)
    assert list(doc) == ["access_key_id", "secret_access_key", "session_token"]
    if mode == "xml":
        assert doc["access_key_id"] == "ASIAXML" and v.version == "AROA:noetl-server"
        assert v.expires_at == datetime(2026, 6, 6, 22, tzinfo=UTC)
    else:
        assert doc["secret_access_key"] == "json-secret" and v.version == "AROA:json"
        assert v.expires_at == datetime.fromtimestamp(1780783200.5, UTC)
    await p.fetch(SecretRef(""))  # env role, default session
    assert "RoleSessionName=noetl-server" in srv.requests[1].body.decode()
    assert "arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fdefault" in srv.requests[1].body.decode()
    await p.close()


async def test_sts_errors(tmp_path: Path) -> None:
    tf = tmp_path / "token"
    tf.write_text("  \n")
    p = sts.build(_ps(AWS_WEB_IDENTITY_TOKEN_FILE=str(tf), AWS_ROLE_ARN=ROLE), "")
    with pytest.raises(SecretConfigError, match="empty"):
        await p.fetch(SecretRef(""))
    p2 = sts.build(_ps(AWS_WEB_IDENTITY_TOKEN_FILE=str(tf)), "")
    with pytest.raises(SecretConfigError, match="no role ARN"):
        await p2.fetch(SecretRef(""))
    assert p.endpoint("eu-west-1") == "https://sts.eu-west-1.amazonaws.com/"


async def test_azure_oauth(serve) -> None:
    async def h(req: web.Request) -> web.Response:
        form = dict(parse_qsl((await req.read()).decode()))
        if form.get("client_secret") != "cs" or form.get("grant_type") != "client_credentials":
            return web.Response(status=401)
        return web.json_response(
            {
                "access_token": f"aad-{req.path.split('/')[1]}-{form['scope']}",
                "expires_in": 3599,
                "token_type": "Bearer",
            }
        )

    srv = await serve(h)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    p = azure_oauth.AzureOAuth(
        _ps(
            AZURE_TENANT_ID="t1", AZURE_CLIENT_ID="c", AZURE_CLIENT_SECRET="cs", NOETL_AZURE_AAD_HOST=srv.url
        ),
        clock=lambda: now,
    )
    v = await p.fetch(SecretRef(""))
    assert v.value == "aad-t1-https://graph.microsoft.com/.default"
    assert v.expires_at == now + timedelta(seconds=3599)
    assert srv.requests[0].path == "/t1/oauth2/v2.0/token"
    assert (
        srv.requests[0]
        .body.decode()
        .startswith("grant_type=client_credentials&client_id=c&client_secret=cs&scope=")
    )
    v = await p.fetch(SecretRef("t2:api://x/.default"))
    assert v.value == "aad-t2-api://x/.default"
    await p.close()
    with pytest.raises(SecretConfigError, match="required"):
        azure_oauth.build(_ps(AZURE_TENANT_ID="t"), "")


async def test_gcp_iam(serve) -> None:
    async def h(req: web.Request) -> web.Response:
        if req.path == "/token":
            return web.json_response({"access_token": "caller", "expires_in": 3600})
        if req.headers.get("Authorization") != "Bearer caller":
            return web.Response(status=401)
        doc = json.loads(await req.read())
        return web.json_response(
            {"accessToken": f"imp-{doc['scope'][0]}-{doc['lifetime']}", "expireTime": "2026-06-06T22:00:00Z"}
        )

    srv = await serve(h)
    p = gcp_iam.build(
        _ps(
            NOETL_GCP_IAM_CREDENTIALS_ENDPOINT=srv.url + "/v1",
            NOETL_GCP_METADATA_TOKEN_URL=srv.url + "/token",
            NOETL_GCP_IMPERSONATE_SA="sa@p",
        ),
        "",
    )
    v = await p.fetch(SecretRef(""))
    assert v.value == "imp-https://www.googleapis.com/auth/cloud-platform-3600s"
    assert v.expires_at == datetime(2026, 6, 6, 22, tzinfo=UTC)
    assert srv.requests[1].path == "/v1/projects/-/serviceAccounts/sa@p:generateAccessToken"
    v = await p.fetch(SecretRef("other@p#scope-x"))
    assert v.value == "imp-scope-x-3600s"
    assert [r.path for r in srv.requests].count("/token") == 1
    await p.close()
    with pytest.raises(SecretConfigError, match="no service account"):
        await gcp_iam.build(_ps(), "").fetch(SecretRef(""))
