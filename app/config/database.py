"""Database settings (server-contract §18.2)."""

from __future__ import annotations

from urllib.parse import quote

from app.config._base import Group, env


class DatabaseSettings(Group):
    url: str = env("DATABASE_URL", default="")
    host: str = env("POSTGRES_HOST", default="localhost")
    port: int = env("POSTGRES_PORT", default=5432, ge=1, le=65535)
    user: str = env("POSTGRES_USER", default="noetl")
    password: str = env("POSTGRES_PASSWORD", default="", repr=False)
    database: str = env("POSTGRES_DATABASE", default="noetl")
    max_connections: int = env("POSTGRES_MAX_CONNECTIONS", default=10, ge=1)
    min_connections: int = env("POSTGRES_MIN_CONNECTIONS", default=1, ge=0)
    acquire_timeout: float = env("POSTGRES_ACQUIRE_TIMEOUT", default=30.0, gt=0)

    @property
    def dsn(self) -> str:
        """DATABASE_URL when set, else a URL built from POSTGRES_*."""
        if self.url:
            return self.url
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(self.database, safe='')}"

    @property
    def configured(self) -> bool:
        """True when the operator named a database (DATABASE_URL or POSTGRES_HOST)."""
        import os

        return bool(self.url) or "POSTGRES_HOST" in os.environ
