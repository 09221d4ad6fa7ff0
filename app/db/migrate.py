"""Forward-only migrations: schema/NNNN_verb_object.sql applied in order, each in a transaction."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

_NAME = re.compile(r"^\d{4}_[a-z]+(_[a-z0-9]+)+\.sql$")
_LOCK_KEY = 7_420_113_001  # arbitrary constant: serialises concurrent migrate runs


class MigrationError(Exception):
    """A migration cannot be applied safely."""


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def migrations_dir() -> Path:
    """The schema/ directory of the project (NOETL_MIGRATIONS_DIR overrides)."""
    override = os.environ.get("NOETL_MIGRATIONS_DIR")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "schema"


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """Read and name-check every migration file, sorted by number."""
    root = directory or migrations_dir()
    files = sorted(p for p in root.glob("*.sql"))
    out = []
    for f in files:
        if not _NAME.match(f.name):
            raise MigrationError(f"migration file name {f.name!r} does not match NNNN_verb_object.sql")
        out.append(Migration(f.name, f.read_text(encoding="utf-8")))
    numbers = [m.name[:4] for m in out]
    if len(set(numbers)) != len(numbers):
        raise MigrationError(f"duplicate migration numbers in {root}")
    return out


def _quote(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


async def migrate(dsn: str, schema: str, directory: Path | None = None) -> list[str]:
    """Apply pending migrations; refuse when an applied file changed. Returns the applied names."""
    migrations = load_migrations(directory)
    conn = await asyncpg.connect(dsn)
    applied_now: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        s = _quote(schema)
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {s}.schema_migrations ("
            "name TEXT PRIMARY KEY, sha256 TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        rows = await conn.fetch(f"SELECT name, sha256 FROM {s}.schema_migrations")
        applied = {r["name"]: r["sha256"] for r in rows}
        for m in migrations:
            if m.name in applied:
                if applied[m.name] != m.sha256:
                    raise MigrationError(
                        f"migration {m.name} was changed after it was applied "
                        f"(recorded sha256 {applied[m.name][:12]}…, file {m.sha256[:12]}…); "
                        "migrations are forward-only: add a new file instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(f"SET LOCAL search_path TO {s}, public")
                await conn.execute(m.sql)
                await conn.execute(
                    f"INSERT INTO {s}.schema_migrations (name, sha256) VALUES ($1, $2)", m.name, m.sha256
                )
            applied_now.append(m.name)
            log.info("migration applied", extra={"migration": m.name})
        known = {m.name for m in migrations}
        unknown = sorted(set(applied) - known)
        if unknown:
            log.warning("database has migrations this build does not know", extra={"migrations": unknown})
    finally:
        try:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
        finally:
            await conn.close()
    return applied_now
