"""The postgres tool against the test database (a fresh clone per test)."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from app.worker.tools import postgres
from app.worker.tools.base import ToolCancelled, ToolError
from tests.support.tool_context import StaticCredentials, make_ctx
from tests.support.wait import eventually

pytestmark = pytest.mark.integration


def credential_for(dsn: str) -> dict[str, Any]:
    u = urlsplit(dsn)
    return {
        "type": "postgres",
        "data": {
            "db_host": u.hostname,
            "db_port": str(u.port or 5432),
            "db_user": u.username,
            "db_password": u.password or "",
            "db_name": u.path.lstrip("/"),
        },
    }


@pytest.fixture
def ctx(db_dsn: str) -> Any:
    return make_ctx(credentials=StaticCredentials({"pg_test": credential_for(db_dsn)}))


async def run(ctx: Any, command: str, **cfg: Any) -> Any:
    return await postgres.run({"auth": "pg_test", "command": command, **cfg}, ctx)


async def test_select_rows_as_objects_and_lists(ctx: Any) -> None:
    sql = "SELECT 1 AS a, 'x'::text AS b, 2.5::numeric AS c, '{\"k\": [1]}'::jsonb AS j, NULL AS n"
    result = await run(ctx, sql)
    assert result == {
        "columns": ["a", "b", "c", "j", "n"],
        "rows": [{"a": 1, "b": "x", "c": 2.5, "j": {"k": [1]}, "n": None}],
        "row_count": 1,
    }
    lists = await run(ctx, "SELECT g FROM generate_series(1, 3) g", as_objects=False)
    assert lists["rows"] == [[1], [2], [3]] and lists["row_count"] == 3


async def test_positional_params(ctx: Any) -> None:
    result = await run(ctx, "SELECT $1::int + $2::int AS s, $3::text AS t", params=[2, 3, "hi"])
    assert result["rows"] == [{"s": 5, "t": "hi"}]


async def test_multi_statement_insert_returning_and_affected_rows(ctx: Any) -> None:
    script = """
        CREATE SCHEMA tenant;
        CREATE TABLE tenant.items (id serial PRIMARY KEY, name text NOT NULL, note text);
        -- a comment; with a semicolon
        INSERT INTO tenant.items (name, note) VALUES ('a', 'x;y'), ('b', $$it's; fine$$);
        INSERT INTO tenant.items (name) VALUES ('c') RETURNING id, name;
    """
    inserted = await run(ctx, script)
    assert inserted == {"columns": ["id", "name"], "rows": [{"id": 3, "name": "c"}], "row_count": 1}
    updated = await run(ctx, "UPDATE tenant.items SET note = 'n' WHERE id <= 2;")
    assert updated == {"affected_rows": 2, "row_count": 2}
    ddl = await run(ctx, "CREATE INDEX ON tenant.items (name)")
    assert ddl == {"affected_rows": 0, "row_count": 0}
    rows = await run(ctx, "SELECT note FROM items ORDER BY id", schema="tenant")
    assert [r["note"] for r in rows["rows"]] == ["n", "n", None]


async def test_function_body_with_semicolons(ctx: Any) -> None:
    script = """
        CREATE FUNCTION public.twice(x int) RETURNS int AS $fn$
        BEGIN
          RETURN x * 2;
        END;
        $fn$ LANGUAGE plpgsql;
        SELECT public.twice(21) AS v;
    """
    assert (await run(ctx, script))["rows"] == [{"v": 42}]


async def test_sql_error_carries_message_and_sqlstate(ctx: Any) -> None:
    with pytest.raises(ToolError) as err:
        await run(ctx, "SELEC 1")
    assert err.value.code == "42601" and "syntax error at or near" in err.value.message
    with pytest.raises(ToolError) as err2:
        await run(ctx, "SELECT * FROM no_such_table")
    assert err2.value.code == "42P01" and 'relation "no_such_table" does not exist' in err2.value.message


async def test_inline_dsn_connection(db_dsn: str) -> None:
    result = await postgres.run({"dsn": db_dsn, "query": "SELECT current_database() AS db"}, make_ctx())
    assert result["rows"][0]["db"] == urlsplit(db_dsn).path.lstrip("/")


async def test_unknown_alias_fails(db_dsn: str) -> None:
    with pytest.raises(ToolError) as err:
        await postgres.run({"auth": "missing", "command": "SELECT 1"}, make_ctx())
    assert err.value.code == "credential_not_found"


async def test_connection_failure_hides_the_password(db_dsn: str) -> None:
    cred = credential_for(db_dsn)
    cred["data"]["db_password"] = "wrong-pass-XYZ"
    cred["data"]["db_user"] = "nobody_here"
    ctx = make_ctx(credentials=StaticCredentials({"bad": cred}))
    with pytest.raises(ToolError) as err:
        await postgres.run({"auth": "bad", "command": "SELECT 1"}, ctx)
    assert "wrong-pass-XYZ" not in err.value.message


async def test_cancellation_cancels_the_query(ctx: Any, db_dsn: str) -> None:
    task = asyncio.create_task(run(ctx, "SELECT pg_sleep(30) /* tool-cancel-probe */"))
    probe = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%tool-cancel-probe%' AND pid <> pg_backend_pid()"
    conn = await asyncpg.connect(db_dsn)
    try:
        await eventually(lambda: conn.fetchval(probe), timeout=10, what="query running")
        started = time.monotonic()
        ctx.cancelled.set()
        with pytest.raises(ToolCancelled):
            await asyncio.wait_for(task, timeout=5)
        assert time.monotonic() - started < 5

        async def gone() -> bool:
            return await conn.fetchval(probe) == 0

        await eventually(gone, timeout=10, what="server-side query cancelled")
    finally:
        await conn.close()


async def test_timeout(ctx: Any) -> None:
    with pytest.raises(ToolError) as err:
        await run(ctx, "SELECT pg_sleep(10)", timeout=0.3)
    assert err.value.code == "timeout"
