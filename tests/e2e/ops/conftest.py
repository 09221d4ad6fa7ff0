"""Settings for the ops tests: the `ops` group is built lazily, so its variables must be set when read."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app.config import Settings
from tests.support.server import make_settings

MakeOps = Callable[..., Settings]


@pytest.fixture
def ops_settings(monkeypatch: pytest.MonkeyPatch) -> MakeOps:
    def make(db_dsn: str, nats_url: str | None = None, **env: str) -> Settings:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = make_settings(db_dsn, nats_url, **env)
        _ = settings.ops  # read now, while the variables are set
        return settings

    return make
