"""Providers against local fakes speaking each real protocol (secrets.md §5, §12.6)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web

from app.config.secrets import ProviderSettings
from app.secrets import refs
from app.secrets.errors import ProviderFetchError, SecretConfigError
from app.secrets.providers import aws, azure, gcp, k8s, vault
from app.secrets.providers.base import SecretRef
from app.secrets.providers.sigv4 import sign_json_post

SECRET_VALUE = "hunter2-very-secret"


def _ps(**kw: object) -> ProviderSettings:
    return ProviderSettings.model_validate(kw)


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


# ---------------------------------------------------------------- GCP


def _gcp_handler(payload: object = None, raw: str | None = None):  # type: ignore[no-untyped-def]
    async def h(req: web.Request) -> web.Response:
        if req.path == "/token":
            if req.headers.get("Metadata-Flavor") != "Google":
                return web.Response(status=403)
            return web.json_response({"access_token": "gcp-tok", "expires_in": 3600})
        if req.headers.get("Authorization") != "Bearer gcp-tok":
            return web.Response(status=401, text="unauthenticated")
        if raw is not None:
            return web.Response(text=raw)
        data = payload if payload is not None else "aHVudGVyMg=="
        name = req.path.removeprefix("/v1/").removesuffix(":access").replace("latest", "3")
        return web.json_response({"name": name, "payload": {"data": data}})

    return h


@pytest.mark.parametrize(
    ("ref", "endpoint_suffix", "path"),
    [
        ("db-pass", "/v1", "/v1/projects/proj/secrets/db-pass/versions/latest:access"),
        ("db-pass", "/v1/", "/v1/projects/proj/secrets/db-pass/versions/latest:access"),
        ("projects/other/secrets/s", "/v1", "/v1/projects/other/secrets/s/versions/latest:access"),
        ("projects/other/secrets/s/versions/7", "/v1", "/v1/projects/other/secrets/s/versions/7:access"),
    ],
)
async def test_gcp_urls(serve, ref: str, endpoint_suffix: str, path: str) -> None:  # §12.6 case 62
    srv = await serve(_gcp_handler())
    p = gcp.build(
        _ps(
            GOOGLE_CLOUD_PROJECT="proj",
            NOETL_GCP_SM_ENDPOINT=srv.url + endpoint_suffix,
            NOETL_GCP_METADATA_TOKEN_URL=srv.url + "/token",
        ),
        "",
    )
    try:
        v = await p.fetch(SecretRef(ref))
        v2 = await p.fetch(SecretRef(ref))
    finally:
        await p.close()
    assert v.value == v2.value == "hunter2"
    assert [r.path for r in srv.requests] == ["/token", path, path]  # token cached
    if path.endswith("latest:access"):
        assert v.version == "3"
    else:
        assert v.version == "7"


def test_gcp_project_fallback_env() -> None:
    assert _ps(GCP_PROJECT="p2").google_cloud_project == "p2"


async def test_gcp_errors(serve) -> None:
    for handler, match in [
        (_gcp_handler(payload="%%not-b64%%"), "not valid base64"),
        (_gcp_handler(raw=f"<html>{SECRET_VALUE}"), "not valid JSON"),
    ]:
        srv = await serve(handler)
        p = gcp.build(
            _ps(
                GOOGLE_CLOUD_PROJECT="proj",
                NOETL_GCP_SM_ENDPOINT=srv.url + "/v1",
                NOETL_GCP_METADATA_TOKEN_URL=srv.url + "/token",
            ),
            "",
        )
        with pytest.raises(ProviderFetchError, match=match) as ei:
            await p.fetch(SecretRef("s"))
        assert ei.value.status == 502
        assert SECRET_VALUE not in str(ei.value)
        await p.close()
    p = gcp.build(_ps(NOETL_GCP_SM_ENDPOINT="http://127.0.0.1:1/v1"), "")
    with pytest.raises(SecretConfigError, match="no project") as ei2:
        await p.fetch(SecretRef("s"))
    assert ei2.value.status == 500
    await p.close()


async def test_gcp_http_error_message(serve) -> None:
    async def h(req: web.Request) -> web.Response:
        if req.path == "/token":
            return web.json_response({"access_token": "t", "expires_in": 100})
        return web.Response(status=404, text="x" * 500)

    srv = await serve(h)
    p = gcp.build(
        _ps(
            GOOGLE_CLOUD_PROJECT="p",
            NOETL_GCP_SM_ENDPOINT=srv.url,
            NOETL_GCP_METADATA_TOKEN_URL=srv.url + "/token",
        ),
        "",
    )
    with pytest.raises(ProviderFetchError) as ei:
        await p.fetch(SecretRef("s"))
    assert str(ei.value) == "gcp secret manager: HTTP 404 accessing 's': " + "x" * 200
    await p.close()


# ---------------------------------------------------------------- K8s


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("creds", ("def", "creds", None)),
        ("creds/token", ("def", "creds", "token")),
        ("prod/creds/token", ("prod", "creds", "token")),
    ],
)
def test_k8s_refs(ref: str, expected: tuple) -> None:  # case 63
    r = refs.parse_k8s(ref, "def")
    assert (r.namespace, r.secret, r.key) == expected


@pytest.mark.parametrize("ref", ["", "a/b/c/d", "a//c", "/x", "x/"])
def test_k8s_bad_refs(ref: str) -> None:
    with pytest.raises(SecretConfigError) as ei:
        refs.parse_k8s(ref, "def")
    assert str(ei.value) == (
        f"kubernetes secrets: invalid reference '{ref}' "
        "(expected '[<namespace>/]<secret>/<key>' or '<secret>')"
    )
    assert ei.value.status == 500


def _k8s_handler(token_holder: dict, data: dict):  # type: ignore[no-untyped-def]
    async def h(req: web.Request) -> web.Response:
        if req.headers.get("Authorization") != f"Bearer {token_holder['token']}":
            return web.Response(status=401, text="Unauthorized")
        if req.headers.get("Accept") != "application/json":
            return web.Response(status=406)
        parts = req.path.split("/")
        # /api/v1/namespaces/{ns}/secrets/{name}
        if len(parts) != 7 or parts[5] != "secrets" or parts[6] not in data:
            return web.json_response({"kind": "Status", "code": 404}, status=404)
        return web.json_response(
            {
                "metadata": {"name": parts[6], "namespace": parts[4], "resourceVersion": "42"},
                "data": {k: _b64(v) for k, v in data[parts[6]].items()},
            }
        )

    return h


async def test_k8s_token_file_rotation(serve, tmp_path: Path) -> None:
    holder = {"token": "tok-A"}
    srv = await serve(_k8s_handler(holder, {"creds": {"token": SECRET_VALUE}}))
    tf = tmp_path / "token"
    tf.write_text("tok-A\n")
    p = k8s.KubernetesSecrets(
        _ps(
            NOETL_K8S_API_URL=srv.url, NOETL_K8S_TOKEN_FILE=str(tf), NOETL_K8S_CA_FILE=str(tmp_path / "none")
        ),
        sa_dir=str(tmp_path),
    )
    assert p.default_namespace == "default"
    v = await p.fetch(SecretRef("creds/token"))
    assert (v.value, v.version) == (SECRET_VALUE, "42")
    holder["token"] = "tok-B"
    tf.write_text("  tok-B  ")
    v = await p.fetch(SecretRef("prod/creds/token"))
    assert v.value == SECRET_VALUE
    assert [r.headers["Authorization"] for r in srv.requests] == ["Bearer tok-A", "Bearer tok-B"]
    assert [r.path for r in srv.requests] == [
        "/api/v1/namespaces/default/secrets/creds",
        "/api/v1/namespaces/prod/secrets/creds",
    ]
    await p.close()


async def test_k8s_inline_token_namespace_file_and_key_rules(serve, tmp_path: Path) -> None:
    holder = {"token": "inline"}
    srv = await serve(
        _k8s_handler(
            holder, {"one": {"only": "v1"}, "multi": {"zeta": "1", "alpha": "2", "mid": "3"}, "empty": {}}
        )
    )
    (tmp_path / "namespace").write_text("team-ns\n")
    p = k8s.KubernetesSecrets(
        _ps(
            NOETL_K8S_API_URL=srv.url,
            NOETL_K8S_TOKEN="inline",
            NOETL_K8S_TOKEN_FILE=str(tmp_path / "missing"),
        ),
        sa_dir=str(tmp_path),
    )
    assert p.default_namespace == "team-ns"
    assert (await p.fetch(SecretRef("one"))).value == "v1"
    with pytest.raises(SecretConfigError) as ei:
        await p.fetch(SecretRef("multi"))
    assert str(ei.value).endswith(
        "Secret 'multi' has 3 keys (alpha, mid, zeta); reference a specific one as 'multi/<key>'"
    )
    with pytest.raises(ProviderFetchError, match="has no data"):
        await p.fetch(SecretRef("empty"))
    with pytest.raises(ProviderFetchError, match="has no key 'nope'"):
        await p.fetch(SecretRef("one/nope"))
    with pytest.raises(ProviderFetchError, match="HTTP 404"):
        await p.fetch(SecretRef("absent/k"))
    await p.close()


async def test_k8s_unreadable_token_file(tmp_path: Path) -> None:
    p = k8s.KubernetesSecrets(
        _ps(NOETL_K8S_API_URL="http://127.0.0.1:1", NOETL_K8S_TOKEN_FILE=str(tmp_path / "nope")),
        sa_dir=str(tmp_path),
    )
    with pytest.raises(SecretConfigError, match="cannot read token file"):
        await p.fetch(SecretRef("a/b"))


def test_k8s_api_url_and_bad_ca(tmp_path: Path) -> None:
    assert k8s.api_url(_ps(KUBERNETES_SERVICE_HOST="10.0.0.1")) == "https://10.0.0.1:443"
    assert k8s.api_url(_ps(KUBERNETES_SERVICE_HOST="10.0.0.1", KUBERNETES_SERVICE_PORT="6443")) == (
        "https://10.0.0.1:6443"
    )
    assert k8s.api_url(_ps()) == "https://kubernetes.default.svc"
    bad = tmp_path / "ca.crt"
    bad.write_text("not a pem")
    with pytest.raises(SecretConfigError, match="not a valid PEM"):
        k8s.KubernetesSecrets(_ps(NOETL_K8S_CA_FILE=str(bad)), sa_dir=str(tmp_path))


# ---------------------------------------------------------------- Vault


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("secret/app/duffel#token", ("secret", "app/duffel", "token")),
        ("duffel#token", ("kv", "duffel", "token")),
        ("duffel", ("kv", "duffel", None)),
        ("m/a/b/c", ("m", "a/b/c", None)),
    ],
)
def test_vault_refs(ref: str, expected: tuple) -> None:  # case 64
    r = refs.parse_vault(ref, "kv")
    assert (r.mount, r.path, r.key) == expected


@pytest.mark.parametrize("ref", ["#token", "duffel#", "/x", "x/", ""])
def test_vault_bad_refs(ref: str) -> None:
    with pytest.raises(SecretConfigError, match="invalid reference"):
        refs.parse_vault(ref, "kv")


def _vault_handler(token: str, data: dict):  # type: ignore[no-untyped-def]
    async def h(req: web.Request) -> web.Response:
        if req.headers.get("X-Vault-Token") != token:
            return web.json_response({"errors": ["permission denied"]}, status=403)
        if req.query_string:
            return web.Response(status=400)
        path = req.path.removeprefix("/v1/")
        if path not in data:
            return web.json_response({"errors": []}, status=404)
        return web.json_response({"data": {"data": data[path], "metadata": {"version": 7}}})

    return h


async def test_vault_fetch(serve, tmp_path: Path) -> None:
    srv = await serve(
        _vault_handler(
            "vt", {"secret/data/app/duffel": {"token": SECRET_VALUE, "n": 5}, "secret/data/one": {"k": "v"}}
        )
    )
    tf = tmp_path / "vt"
    tf.write_text("vt\n")
    p = vault.build(_ps(VAULT_ADDR=srv.url + "/", NOETL_VAULT_TOKEN_FILE=str(tf)), "")
    v = await p.fetch(SecretRef("secret/app/duffel#token"))
    assert (v.value, v.version) == (SECRET_VALUE, "7")
    assert (await p.fetch(SecretRef("one"))).value == "v"
    assert "X-Vault-Namespace" not in srv.requests[0].headers
    with pytest.raises(ProviderFetchError) as ei:
        await p.fetch(SecretRef("secret/app/duffel#n"))
    assert str(ei.value) == "vault: key 'n' of 'secret/app/duffel' is not a string (got number)"
    with pytest.raises(SecretConfigError, match="has 2 keys"):
        await p.fetch(SecretRef("secret/app/duffel"))
    tf.write_text("rotated")
    with pytest.raises(ProviderFetchError, match="HTTP 403"):
        await p.fetch(SecretRef("one"))
    await p.close()


async def test_vault_namespace_and_inline_token(serve) -> None:
    srv = await serve(_vault_handler("inline", {"kv/data/x": {"k": "v"}}))
    p = vault.build(
        _ps(VAULT_ADDR=srv.url, VAULT_TOKEN="inline", VAULT_NAMESPACE="team", NOETL_VAULT_KV_MOUNT="kv"), ""
    )
    assert (await p.fetch(SecretRef("x#k"))).value == "v"
    assert srv.requests[0].headers["X-Vault-Namespace"] == "team"
    await p.close()


async def test_vault_no_token_and_bad_ca(tmp_path: Path) -> None:
    p = vault.build(_ps(VAULT_ADDR="http://127.0.0.1:1"), "")
    with pytest.raises(SecretConfigError, match="no token"):
        await p.fetch(SecretRef("x#k"))
    with pytest.raises(SecretConfigError, match="not readable"):
        vault.build(_ps(NOETL_VAULT_CA_FILE=str(tmp_path / "missing.pem")), "")


# ---------------------------------------------------------------- AWS


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("prod/x", ("prod/x", None, None)),
        ("prod/db#password", ("prod/db", None, "password")),
        ("us-east-1:prod/x", ("prod/x", "us-east-1", None)),
        (
            "arn:aws:secretsmanager:us-east-1:123:secret:prod/x",
            ("arn:aws:secretsmanager:us-east-1:123:secret:prod/x", None, None),
        ),
        ("eu-west-1:prod/db#username", ("prod/db", "eu-west-1", "username")),
        ("my_secret:x", ("my_secret:x", None, None)),
        ("  prod/x  ", ("prod/x", None, None)),
    ],
)
def test_aws_refs(ref: str, expected: tuple) -> None:  # case 65
    r = refs.parse_aws(ref)
    assert (r.secret_id, r.region, r.json_key) == expected


@pytest.mark.parametrize("ref", ["foo#", "", "   ", "#k"])
def test_aws_bad_refs(ref: str) -> None:
    with pytest.raises(SecretConfigError):
        refs.parse_aws(ref)


SIGV4_NOW = datetime(2026, 6, 6, 21, 0, 0, tzinfo=UTC)
AKID, SECRET_KEY = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
VECTOR_BODY = b'{"SecretId":"prod/x","VersionStage":"AWSCURRENT"}'


@pytest.mark.parametrize(
    ("token", "sig"),
    [
        (None, "b6a80d501a019bfbe659f0d7e1ef9110088098f831bc3fee02ccd66e534fafb8"),
        ("FQoTEMPTOKEN", "6f74f554e860a186948060c231092ffaf1d5f5443a1f1e61de23c58c2dabc642"),
    ],
)
def test_sigv4_vector(token: str | None, sig: str) -> None:
    assert hashlib.sha256(VECTOR_BODY).hexdigest() == (
        "5b40d718c6b5f1b1cb39be83ee3ec84a33f84fdde3c9d2ffd0bfd43375e1e862"
    )
    h = sign_json_post(
        host="secretsmanager.us-east-1.amazonaws.com",
        body=VECTOR_BODY,
        region="us-east-1",
        service="secretsmanager",
        target="secretsmanager.GetSecretValue",
        access_key=AKID,
        secret_key=SECRET_KEY,
        session_token=token,
        now=SIGV4_NOW,
    )
    assert h["Authorization"].endswith(f"Signature={sig}")
    assert h["Authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260606/us-east-1/secretsmanager/aws4_request, "
        "SignedHeaders="
    )
    assert ("X-Amz-Security-Token" in h) == bool(token)


@pytest.mark.parametrize("token", [None, "FQoTEMPTOKEN"])
def test_sigv4_matches_botocore(token: str | None) -> None:
    from unittest import mock

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    host = "secretsmanager.eu-west-1.amazonaws.com"
    ours = sign_json_post(
        host=host,
        body=VECTOR_BODY,
        region="eu-west-1",
        service="secretsmanager",
        target="secretsmanager.GetSecretValue",
        access_key=AKID,
        secret_key=SECRET_KEY,
        session_token=token,
        now=SIGV4_NOW,
    )
    req = AWSRequest(
        method="POST",
        url=f"https://{host}/",
        data=VECTOR_BODY,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "secretsmanager.GetSecretValue",
            "X-Amz-Content-Sha256": ours["X-Amz-Content-Sha256"],
        },
    )
    with mock.patch("botocore.auth.get_current_datetime", return_value=SIGV4_NOW.replace(tzinfo=None)):
        SigV4Auth(Credentials(AKID, SECRET_KEY, token), "secretsmanager", "eu-west-1").add_auth(req)
    assert req.headers["Authorization"] == ours["Authorization"]


def _verify_sigv4(req: web.Request, body: bytes, secret_key: str) -> str | None:
    """Recompute the signature server-side; return the region on success, None on mismatch."""
    auth = req.headers.get("Authorization", "")
    try:
        cred = auth.split("Credential=")[1].split(",")[0]
        signed = auth.split("SignedHeaders=")[1].split(",")[0]
        sig = auth.split("Signature=")[1]
    except IndexError:
        return None
    _akid, date, region, service, _ = cred.split("/")
    names = signed.split(";")
    lower = {k.lower(): v for k, v in req.headers.items()}
    canon = "".join(f"{n}:{lower[n].strip()}\n" for n in names)
    body_hash = hashlib.sha256(body).hexdigest()
    if lower.get("x-amz-content-sha256") != body_hash:
        return None
    creq = f"{req.method}\n{req.path}\n{req.query_string}\n{canon}\n{signed}\n{body_hash}"
    sts = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            lower["x-amz-date"],
            f"{date}/{region}/{service}/aws4_request",
            hashlib.sha256(creq.encode()).hexdigest(),
        ]
    )

    def mac(k: bytes, m: str) -> bytes:
        return hmac.new(k, m.encode(), hashlib.sha256).digest()

    k = mac(mac(mac(mac(("AWS4" + secret_key).encode(), date), region), service), "aws4_request")
    expected = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    required = {"host", "x-amz-date", "x-amz-target", "content-type"}
    if not hmac.compare_digest(expected, sig) or not required <= set(names):
        return None
    return region


def _aws_handler(secrets_by_id: dict, seen_regions: list):  # type: ignore[no-untyped-def]
    async def h(req: web.Request) -> web.Response:
        body = await req.read()
        region = _verify_sigv4(req, body, SECRET_KEY)
        if region is None:
            return web.json_response({"__type": "InvalidSignatureException"}, status=400)
        if req.headers.get("X-Amz-Target") != "secretsmanager.GetSecretValue":
            return web.Response(status=400)
        seen_regions.append(region)
        doc = json.loads(body)
        sid = doc["SecretId"]
        if sid not in secrets_by_id:
            return web.json_response({"__type": "ResourceNotFoundException"}, status=400)
        return web.json_response({"VersionId": "ver-1", "SecretString": secrets_by_id[sid], "Name": sid})

    return h


async def test_aws_fetch_signed(serve) -> None:
    regions: list[str] = []
    srv = await serve(
        _aws_handler(
            {
                "prod/x": SECRET_VALUE,
                "prod/db": json.dumps(
                    {
                        "username": "admin",
                        "port": 5432,
                        "ssl": True,
                        "none": None,
                        "obj": {"a": 1},
                        "ratio": 1.5,
                    }
                ),
            },
            regions,
        )
    )
    settings = _ps(
        AWS_ACCESS_KEY_ID=AKID,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_SESSION_TOKEN="FQoTEMPTOKEN",
        AWS_REGION="us-west-2",
        NOETL_AWS_SM_ENDPOINT=srv.url + "/",
    )
    p = aws.build(settings, "")
    v = await p.fetch(SecretRef("prod/x"))
    assert (v.value, v.version) == (SECRET_VALUE, "ver-1")
    assert srv.requests[0].headers["X-Amz-Security-Token"] == "FQoTEMPTOKEN"
    assert srv.requests[0].headers["Content-Type"] == "application/x-amz-json-1.1"
    assert srv.requests[0].body == b'{"SecretId":"prod/x","VersionStage":"AWSCURRENT"}'
    assert (await p.fetch(SecretRef("eu-west-1:prod/db#username", region="ap-south-1"))).value == "admin"
    assert (await p.fetch(SecretRef("prod/db#port", region="ap-south-1"))).value == "5432"
    assert (await p.fetch(SecretRef("prod/db#ssl"))).value == "true"
    assert (await p.fetch(SecretRef("prod/db#none"))).value == ""
    assert (await p.fetch(SecretRef("prod/db#ratio"))).value == "1.5"
    assert regions == ["us-west-2", "eu-west-1", "ap-south-1", "us-west-2", "us-west-2", "us-west-2"]
    with pytest.raises(SecretConfigError, match="not a scalar"):
        await p.fetch(SecretRef("prod/db#obj"))
    with pytest.raises(SecretConfigError, match="has no key 'missing'"):
        await p.fetch(SecretRef("prod/db#missing"))
    with pytest.raises(SecretConfigError) as ei:
        await p.fetch(SecretRef("absent"))
    assert str(ei.value).startswith("GetSecretValue 'absent' returned 400: ")
    assert ei.value.status == 500
    await p.close()


async def test_aws_wrong_secret_rejected_by_fake(serve) -> None:
    srv = await serve(_aws_handler({"prod/x": SECRET_VALUE}, []))
    p = aws.build(
        _ps(
            AWS_ACCESS_KEY_ID=AKID,
            AWS_SECRET_ACCESS_KEY="wrong",
            AWS_REGION="us-east-1",
            NOETL_AWS_SM_ENDPOINT=srv.url,
        ),
        "",
    )
    with pytest.raises(SecretConfigError, match="InvalidSignature"):
        await p.fetch(SecretRef("prod/x"))
    await p.close()


def test_aws_build_requires_env() -> None:
    with pytest.raises(SecretConfigError, match="AWS_ACCESS_KEY_ID"):
        aws.build(_ps(AWS_REGION="us-east-1"), "")
    with pytest.raises(SecretConfigError, match="AWS_REGION"):
        aws.build(_ps(AWS_ACCESS_KEY_ID="a", AWS_SECRET_ACCESS_KEY="b"), "")
    assert _ps(AWS_DEFAULT_REGION="eu-west-3").aws_region == "eu-west-3"
    p = aws.build(_ps(AWS_ACCESS_KEY_ID="a", AWS_SECRET_ACCESS_KEY="b", AWS_REGION="us-east-1"), "")
    assert p.endpoint("eu-west-1") == "https://secretsmanager.eu-west-1.amazonaws.com"


# ---------------------------------------------------------------- Azure


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("name", (None, "name", None)),
        ("vault/name", ("vault", "name", None)),
        ("name#ver", (None, "name", "ver")),
        ("v/n#abc", ("v", "n", "abc")),
    ],
)
def test_azure_refs(ref: str, expected: tuple) -> None:  # case 66
    r = refs.parse_azure(ref)
    assert (r.vault, r.name, r.version) == expected


@pytest.mark.parametrize("ref", ["/foo", "foo/", "foo#", "", " "])
def test_azure_bad_refs(ref: str) -> None:
    with pytest.raises(SecretConfigError):
        refs.parse_azure(ref)


def test_azure_urls() -> None:
    assert azure.secret_url("prod-eu", "vault.azure.net", "db", None, "7.4") == (
        "https://prod-eu.vault.azure.net/secrets/db?api-version=7.4"
    )
    assert azure.secret_url("prod-eu", "vault.azure.cn", "db", "abc", "7.5") == (
        "https://prod-eu.vault.azure.cn/secrets/db/abc?api-version=7.5"
    )


def _azure_handler(imds_calls: list):  # type: ignore[no-untyped-def]
    async def h(req: web.Request) -> web.Response:
        if req.path == "/imds":
            if req.headers.get("Metadata") != "true":
                return web.Response(status=400)
            imds_calls.append(req.raw_path.split("?", 1)[1])
            return web.json_response({"access_token": "imds-tok", "expires_in": "3599"})
        if req.headers.get("Authorization") not in {"Bearer imds-tok", "Bearer static-tok"}:
            return web.json_response({"error": {"code": "Unauthorized"}}, status=401)
        if req.query.get("api-version") != "7.4":
            return web.Response(status=400)
        parts = req.path.split("/")  # /secrets/<name>[/<version>]
        version = parts[3] if len(parts) > 3 else "latestver"
        host = req.headers["Host"].split(".")[0]
        return web.json_response(
            {
                "value": f"{SECRET_VALUE}@{host}",
                "id": f"https://{host}.vault.azure.net/secrets/{parts[2]}/{version}",
            }
        )

    return h


async def test_azure_imds_flow(serve) -> None:
    calls: list[str] = []
    srv = await serve(_azure_handler(calls))
    p = azure.AzureKeyVault(
        _ps(AZURE_KEYVAULT_VAULT="prod-eu", NOETL_AZURE_IMDS_TOKEN_URL=srv.url + "/imds"),
        origin_override=srv.url,
    )
    v = await p.fetch(SecretRef("db"))
    assert (v.value, v.version) == (f"{SECRET_VALUE}@prod-eu", "latestver")
    v = await p.fetch(SecretRef("other/db#v5"))
    assert (v.value, v.version) == (f"{SECRET_VALUE}@other", "v5")
    assert calls == ["api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"]  # cached
    assert srv.requests[1].headers["Host"] == "prod-eu.vault.azure.net"
    assert srv.requests[1].path == "/secrets/db"
    await p.close()


async def test_azure_static_token_bypasses_imds(serve) -> None:
    calls: list[str] = []
    srv = await serve(_azure_handler(calls))
    p = azure.AzureKeyVault(
        _ps(AZURE_KEYVAULT_TOKEN="static-tok", NOETL_AZURE_IMDS_TOKEN_URL=srv.url + "/imds"),
        origin_override=srv.url,
    )
    assert (await p.fetch(SecretRef("v/n"))).value == f"{SECRET_VALUE}@v"
    assert calls == []
    with pytest.raises(SecretConfigError, match="no vault"):
        await p.fetch(SecretRef("n"))
    await p.close()


async def test_azure_imds_expires_unparseable(serve) -> None:
    async def h(req: web.Request) -> web.Response:
        if req.path == "/imds":
            return web.json_response({"access_token": "imds-tok", "expires_in": "soon"})
        return web.json_response({"value": "x", "id": "https://v.vault.azure.net/secrets/n/ver9"})

    srv = await serve(h)
    now = [0.0]
    p = azure.AzureKeyVault(
        _ps(AZURE_KEYVAULT_VAULT="v", NOETL_AZURE_IMDS_TOKEN_URL=srv.url + "/imds"),
        origin_override=srv.url,
        clock=lambda: now[0],
    )
    await p.fetch(SecretRef("n"))
    now[0] = 20.0  # 40 s left (> 30): reused
    await p.fetch(SecretRef("n"))
    now[0] = 31.0  # 29 s left: refreshed
    await p.fetch(SecretRef("n"))
    assert [r.path for r in srv.requests].count("/imds") == 2
    await p.close()


async def test_azure_http_error(serve) -> None:
    async def h(req: web.Request) -> web.Response:
        return web.Response(status=403, text="forbidden")

    srv = await serve(h)
    p = azure.AzureKeyVault(_ps(AZURE_KEYVAULT_TOKEN="t", AZURE_KEYVAULT_VAULT="v"), origin_override=srv.url)
    with pytest.raises(SecretConfigError, match="HTTP 403") as ei:
        await p.fetch(SecretRef("n"))
    assert ei.value.status == 500
    await p.close()


# ---------------------------------------------------------------- other grammars


def test_sts_refs() -> None:
    assert refs.parse_sts("") == refs.StsRef(None, None, None)
    assert refs.parse_sts("us-west-2:arn:aws:iam::1:role/r#sess") == refs.StsRef(
        "us-west-2", "arn:aws:iam::1:role/r", "sess"
    )
    assert refs.parse_sts("arn:aws:iam::1:role/r#") == refs.StsRef(None, "arn:aws:iam::1:role/r#", None)
    assert refs.parse_sts("foo:bar").region is None


def test_azure_oauth_refs() -> None:
    assert refs.parse_azure_oauth("tenant1:api://x/.default") == refs.AzureOAuthRef(
        "tenant1", "api://x/.default"
    )
    assert refs.parse_azure_oauth("https://graph.microsoft.com/.default") == refs.AzureOAuthRef(
        None, "https://graph.microsoft.com/.default"
    )
    assert refs.parse_azure_oauth("") == refs.AzureOAuthRef(None, None)


def test_gcp_iam_refs() -> None:
    assert refs.parse_gcp_iam(" sa@p.iam.gserviceaccount.com # s ") == refs.GcpIamRef(
        "sa@p.iam.gserviceaccount.com", "s"
    )
    assert refs.parse_gcp_iam("") == refs.GcpIamRef(None, refs.GCP_IAM_DEFAULT_SCOPE)


async def test_one_mib_secret_passes_through(serve) -> None:  # case 68 (provider half)
    big = "x" * (1024 * 1024)
    srv = await serve(_vault_handler("t", {"secret/data/big": {"v": big}}))
    p = vault.build(_ps(VAULT_ADDR=srv.url, VAULT_TOKEN="t"), "")
    assert (await p.fetch(SecretRef("big#v"))).value == big
    await p.close()
