"""The auth: forms, the credential type mapping and the HTTP headers a credential becomes."""

from __future__ import annotations

import base64

import pytest

from app.worker.credentials import nats_params, postgres_params
from app.worker.tools._auth import auth_headers, resolve_auth, resolve_auth_map
from app.worker.tools._cancel import seconds
from app.worker.tools.base import ToolError
from app.worker.tools.nats import _subject_match
from tests.support.tool_context import StaticCredentials

pytestmark = pytest.mark.unit

TABLE = {
    "pg_local": {
        "type": "postgres",
        "data": {"db_host": "h", "db_port": "5433", "db_user": "u", "db_password": "p", "db_name": "d"},
    },
    "api_tok": {"type": "bearer", "data": {"token": "s3cret"}},
    "svc_basic": {"type": "basic", "data": {"username": "alice", "password": "pw"}},
    "svc_key": {"type": "api_key", "data": {"api_key": "k-123", "header": "X-Token"}},
    "bus": {
        "type": "nats",
        "data": {"nats_url": "nats://a:4222,nats://b:4222", "nats_user": "n", "nats_password": "np"},
    },
    "env_tok": {"type": "env", "data": {"value": "from-env", "token": "from-env"}},
}


async def test_alias_string_resolves_through_credentials() -> None:
    creds = StaticCredentials(TABLE)
    cred = await resolve_auth("pg_local", creds)
    assert cred is not None and cred["type"] == "postgres" and creds.asked == ["pg_local"]
    assert postgres_params(cred) == {"host": "h", "port": 5433, "user": "u", "password": "p", "database": "d"}


async def test_structured_form_forces_the_type() -> None:
    cred = await resolve_auth({"type": "bearer", "credential": "env_tok"}, StaticCredentials(TABLE))
    assert auth_headers(cred) == {"Authorization": "Bearer from-env"}


async def test_multi_credential_map_picks_by_type() -> None:
    auth = {
        "db": {"source": "credential", "type": "postgres", "key": "pg_local"},
        "bus": {"source": "credential", "type": "nats", "key": "bus"},
    }
    creds = StaticCredentials(TABLE)
    resolved = await resolve_auth_map(auth, creds)
    assert set(resolved) == {"db", "bus"}
    pg = await resolve_auth(auth, creds, want="postgres")
    assert pg is not None and postgres_params(pg)["database"] == "d"
    with pytest.raises(ToolError, match="none is of type http"):
        await resolve_auth(auth, creds, want="http")


async def test_inline_structured_auth_is_not_an_alias() -> None:
    creds = StaticCredentials(TABLE)
    cred = await resolve_auth({"type": "api_key", "key": "inline-key"}, creds)
    assert auth_headers(cred) == {"X-API-Key": "inline-key"} and creds.asked == []


async def test_unknown_alias_raises_without_value() -> None:
    with pytest.raises(ToolError) as err:
        await resolve_auth("nope", StaticCredentials(TABLE))
    assert err.value.code == "credential_not_found"


def test_headers_per_type() -> None:
    assert auth_headers(TABLE["api_tok"]) == {"Authorization": "Bearer s3cret"}
    basic = auth_headers(TABLE["svc_basic"])["Authorization"]
    assert base64.b64decode(basic.removeprefix("Basic ")) == b"alice:pw"
    assert auth_headers(TABLE["svc_key"]) == {"X-Token": "k-123"}
    assert auth_headers(None) == {}


def test_headers_refuse_a_postgres_credential_without_leaking_it() -> None:
    with pytest.raises(ToolError) as err:
        auth_headers(TABLE["pg_local"])
    assert "db_password" not in err.value.message and "'postgres'" in err.value.message


def test_nats_params() -> None:
    assert nats_params(TABLE["bus"]) == {
        "servers": ["nats://a:4222", "nats://b:4222"],
        "user": "n",
        "password": "np",
    }


def test_seconds_parsing() -> None:
    assert (
        seconds(5) == 5.0 and seconds("30s") == 30.0 and seconds("2m") == 120.0 and seconds("250ms") == 0.25
    )
    assert seconds(None) is None and seconds(True) is None and seconds(0) is None and seconds("x") is None


def test_subject_match() -> None:
    assert _subject_match("a.*", "a.b") and not _subject_match("a.*", "a.b.c")
    assert _subject_match("a.>", "a.b.c") and not _subject_match("a.>", "a")
    assert _subject_match("k1", "k1") and not _subject_match("k1", "k2")


def test_env_credentials_holding_urls() -> None:
    pg = {"type": "env", "data": {"value": "postgresql://u:p@h:5/d", "token": "postgresql://u:p@h:5/d"}}
    assert postgres_params(pg) == {"dsn": "postgresql://u:p@h:5/d"}
    bus = {"type": "env", "data": {"value": "nats://h:4222", "token": "nats://h:4222"}}
    assert nats_params(bus)["servers"] == ["nats://h:4222"] and "token" not in nats_params(bus)
