"""Settings: defaults of the contract and fail-fast errors that name the variable."""

from __future__ import annotations

import pytest

from app.config import load_settings
from app.errors import ConfigError

pytestmark = pytest.mark.unit


def test_defaults(clean_env: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert (s.server.host, s.server.port, s.server.schema_name) == ("0.0.0.0", 8082, "noetl")
    assert (s.server.shard_index, s.server.shard_count) == (0, 1)
    assert s.db.dsn == "postgresql://noetl@localhost:5432/noetl"
    assert s.nats.stream == "NOETL_COMMANDS" and not s.nats.enabled
    assert s.server.claim_lease_seconds == 120 and s.server.claim_retry_after_seconds == 2
    assert s.server.server_url == "http://localhost:8082"


def test_database_url_overrides_postgres_vars(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("POSTGRES_HOST", "db")
    clean_env.setenv("DATABASE_URL", "postgresql://u@h:1/d")
    assert load_settings().db.dsn == "postgresql://u@h:1/d"


def test_postgres_vars_build_dsn(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("POSTGRES_HOST", "db")
    clean_env.setenv("POSTGRES_PASSWORD", "p@ss")
    assert load_settings().db.dsn == "postgresql://noetl:p%40ss@db:5432/noetl"


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"NOETL_SHARD_INDEX": "2", "NOETL_SHARD_COUNT": "2"}, "NOETL_SHARD_INDEX"),
        ({"NOETL_SERVER_MACHINE_ID": "1024"}, "NOETL_SERVER_MACHINE_ID"),
        ({"NOETL_SERVER_MACHINE_ID": "-1"}, "NOETL_SERVER_MACHINE_ID"),
        ({"NOETL_TLS_CERT": "/c.pem"}, "NOETL_TLS_CERT"),
        ({"NOETL_TLS_KEY": "/k.pem"}, "NOETL_TLS_KEY"),
        ({"NOETL_PORT": "eighty"}, "NOETL_PORT"),
        ({"POSTGRES_MAX_CONNECTIONS": "x"}, "POSTGRES_MAX_CONNECTIONS"),
        ({"NOETL_SHARD_COUNT": "many"}, "NOETL_SHARD_COUNT"),
    ],
)
def test_fail_fast_names_the_variable(clean_env: pytest.MonkeyPatch, env: dict[str, str], names: str) -> None:
    for k, v in env.items():
        clean_env.setenv(k, v)
    with pytest.raises(ConfigError, match=names):
        load_settings()


def test_public_url_strips_api(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("NOETL_PUBLIC_SERVER_URL", "http://noetl.svc:8082/api/")
    assert load_settings().server.server_url == "http://noetl.svc:8082"


def test_rust_log_fallback(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RUST_LOG", "debug")
    assert load_settings().server.effective_log_level == "debug"
    clean_env.setenv("RUST_LOG", "noetl_server=debug,axum=info")
    assert load_settings().server.effective_log_level == "info"
    clean_env.setenv("NOETL_LOG_LEVEL", "warning")
    assert load_settings().server.effective_log_level == "warning"


def test_nats_inline_credentials_are_stripped(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("NATS_URL", "nats://bob:secret@nats:4222")
    s = load_settings()
    opts = s.nats.connect_options()
    assert opts == {"servers": ["nats://nats:4222"], "user": "bob", "password": "secret"}
    assert "secret" not in s.nats.safe_url
