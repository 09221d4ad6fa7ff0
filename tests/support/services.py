"""Real PostgreSQL and NATS for tests: env-named servers, testcontainers, or embedded wheels."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.devstack.nats import EmbeddedNats
from app.devstack.postgres import EmbeddedPostgres


def docker_available() -> bool:
    """True when a Docker engine answers (testcontainers is used only then)."""
    if not shutil.which("docker"):
        return False
    try:
        res = subprocess.run(["docker", "info"], capture_output=True, timeout=5)
    except (subprocess.SubprocessError, OSError):
        return False
    return res.returncode == 0


@contextmanager
def postgres_server(workdir: Path) -> Iterator[str]:
    """Yield an admin DSN of a real PostgreSQL server."""
    url = os.environ.get("NOETL_TEST_DATABASE_URL")
    if url:
        yield url
        return
    if docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as pg:
            yield pg.get_connection_url()
        return
    server = EmbeddedPostgres(workdir / "pg")
    dsn = server.start()
    try:
        yield dsn
    finally:
        server.stop()


@contextmanager
def nats_server(workdir: Path) -> Iterator[str]:
    """Yield the URL of a real NATS server with JetStream."""
    url = os.environ.get("NOETL_TEST_NATS_URL")
    if url:
        yield url
        return
    server = EmbeddedNats(workdir / "nats")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def with_database(dsn: str, database: str) -> str:
    """The same server DSN pointing at another database."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))
