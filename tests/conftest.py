"""Session fixtures: a real PostgreSQL (template database migrated once, cloned per test) and NATS."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from app.db.migrate import migrate
from app.devstack.nats import EmbeddedNats
from tests.support.services import nats_server, postgres_server, with_database

TEST_SCHEMA = "noetl"


@pytest.fixture(scope="session")
def services_dir() -> Iterator[Path]:
    # Not under pytest's tmp_path: pytest prunes old base temp dirs when other pytest sessions start,
    # which would delete a running server's data directory.
    path = Path(tempfile.mkdtemp(prefix="noetl-test-services-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_admin_dsn(services_dir: Path) -> Iterator[str]:
    with postgres_server(services_dir) as dsn:
        yield dsn


@pytest.fixture(scope="session")
async def template_db(pg_admin_dsn: str) -> AsyncIterator[str]:
    name = f"noetl_tpl_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(pg_admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    await migrate(with_database(pg_admin_dsn, name), TEST_SCHEMA)
    yield name
    try:
        conn = await asyncpg.connect(pg_admin_dsn, timeout=5)
    except OSError:
        return  # the embedded server is already gone, and its data directory with it
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def db_dsn(pg_admin_dsn: str, template_db: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test (cloned from the template)."""
    name = f"noetl_t_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(pg_admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    finally:
        await conn.close()
    yield with_database(pg_admin_dsn, name)
    conn = await asyncpg.connect(pg_admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def nats_url(services_dir: Path) -> Iterator[str]:
    """A shared NATS server; tests use unique stream and subject names."""
    with nats_server(services_dir) as url:
        yield url


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A NATS server owned by one test, which may stop and restart it."""
    server = EmbeddedNats(tmp_path / "own-nats")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Drop NOETL/POSTGRES/NATS env vars so a test controls configuration fully."""
    for key in list(os.environ):
        if key.startswith(("NOETL_", "POSTGRES_", "NATS_", "WORKER_")) or key == "DATABASE_URL":
            if key.startswith("NOETL_TEST_"):
                continue
            monkeypatch.delenv(key, raising=False)
    return monkeypatch
