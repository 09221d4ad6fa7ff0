"""Migrations: forward-only, recorded with sha256, refused when an applied file changed."""

from __future__ import annotations

import shutil
from pathlib import Path

import asyncpg
import pytest

from app.db.migrate import MigrationError, migrate, migrations_dir

pytestmark = pytest.mark.integration


async def test_template_has_every_core_table(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'noetl'"
        )
    finally:
        await conn.close()
    names = {r["table_name"] for r in rows}
    for table in (
        "event",
        "command",
        "execution",
        "outbox",
        "catalog",
        "credential",
        "keychain",
        "runtime",
        "secret_audit",
        "projection_checkpoint",
        "transient",
        "result_store",
    ):
        assert table in names, table


async def test_rerun_applies_nothing(db_dsn: str) -> None:
    assert await migrate(db_dsn, "noetl") == []


async def test_edited_migration_is_refused(db_dsn: str, tmp_path: Path) -> None:
    copy = tmp_path / "schema"
    shutil.copytree(migrations_dir(), copy)
    target = sorted(copy.glob("0001_*.sql"))[0]
    target.write_text(target.read_text() + "\n-- edited after apply\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrate(db_dsn, "noetl", copy)


async def test_new_migration_applies_in_order(db_dsn: str, tmp_path: Path) -> None:
    copy = tmp_path / "schema"
    shutil.copytree(migrations_dir(), copy)
    (copy / "9998_create_alpha_table.sql").write_text("CREATE TABLE alpha (id int);")
    (copy / "9999_add_alpha_column.sql").write_text("ALTER TABLE alpha ADD COLUMN x int;")
    assert await migrate(db_dsn, "noetl", copy) == [
        "9998_create_alpha_table.sql",
        "9999_add_alpha_column.sql",
    ]


async def test_bad_file_name_is_refused(db_dsn: str, tmp_path: Path) -> None:
    copy = tmp_path / "schema"
    shutil.copytree(migrations_dir(), copy)
    (copy / "badname.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="does not match"):
        await migrate(db_dsn, "noetl", copy)


async def test_event_log_is_append_only(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn, server_settings={"search_path": "noetl,public"})
    try:
        await conn.execute(
            "INSERT INTO catalog (catalog_id, path, version, kind) VALUES (1, 'p', 1, 'playbook')"
        )
        await conn.execute(
            "INSERT INTO event (execution_id, catalog_id, event_id, event_type) VALUES (10, 1, 11, 'x')"
        )
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute("UPDATE event SET status = 'X'")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute("DELETE FROM event")
        async with conn.transaction():
            await conn.execute("SET LOCAL noetl.allow_event_delete = 'on'")
            await conn.execute("DELETE FROM event")
        assert await conn.fetchval("SELECT count(*) FROM event") == 0
    finally:
        await conn.close()


async def test_result_shape_constraint(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn, server_settings={"search_path": "noetl,public"})
    try:
        await conn.execute(
            "INSERT INTO catalog (catalog_id, path, version, kind) VALUES (1, 'p', 1, 'playbook')"
        )
        await conn.execute(
            "INSERT INTO event (execution_id, catalog_id, event_id, event_type, result) "
            'VALUES (10, 1, 11, \'x\', \'{"status": "ok", "context": {}}\')'
        )
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO event (execution_id, catalog_id, event_id, event_type, result) "
                'VALUES (10, 1, 12, \'x\', \'{"kind": "a", "data": 1}\')'
            )
    finally:
        await conn.close()
