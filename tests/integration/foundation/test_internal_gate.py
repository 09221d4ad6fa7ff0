"""The internal gate: 401 when the server has no token, 403 for every client-side failure."""

from __future__ import annotations

import pytest

from tests.support.server import make_settings, running_api

pytestmark = pytest.mark.integration

TOKEN = "0123456789abcdef" * 4


async def test_unconfigured_server_answers_401(db_dsn: str) -> None:
    async with running_api(make_settings(db_dsn)) as api:
        status, body = await api.get(
            "/api/internal/outbox/pending-count", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert status == 401 and "not configured" in body["error"]


@pytest.mark.parametrize(
    "header",
    [None, "", "Basic abc", f"Bearer {TOKEN}x", "Bearer", "Bearer    ", f"Token {TOKEN}", "Bearer ñ"],
)
async def test_client_failures_answer_403(db_dsn: str, header: str | None) -> None:
    async with running_api(make_settings(db_dsn, NOETL_INTERNAL_API_TOKEN=TOKEN)) as api:
        headers = {} if header is None else {"Authorization": header}
        status, body = await api.get("/api/internal/anything", headers=headers)
        assert status == 403, (header, body)
        assert TOKEN not in str(body)


async def test_valid_token_passes_the_gate(db_dsn: str) -> None:
    async with running_api(make_settings(db_dsn, NOETL_INTERNAL_API_TOKEN=f"  {TOKEN} ")) as api:
        status, _ = await api.get("/api/internal/not-a-route", headers={"Authorization": f"bearer  {TOKEN} "})
        assert status == 404  # past the gate; no such route
