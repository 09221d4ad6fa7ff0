"""NATS settings (server-contract §18.3)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from app.config._base import Group, env


class NatsSettings(Group):
    url: str = env("NATS_URL", default="")
    user: str = env("NATS_USER", default="")
    password: str = env("NATS_PASSWORD", default="", repr=False)
    stream: str = env("NATS_STREAM", default="NOETL_COMMANDS")
    subject: str = env("NATS_SUBJECT", default="noetl.commands")
    command_max_age_seconds: float = env("NOETL_COMMAND_STREAM_MAX_AGE_SECONDS", default=86400.0, gt=0)
    duplicate_window_seconds: float = env(
        "NOETL_COMMAND_STREAM_DUPLICATE_WINDOW_SECONDS", default=120.0, gt=0
    )
    shard_subject_route: bool = env("NOETL_SHARD_SUBJECT_ROUTE", default=False)
    command_shard_count: int = env("NOETL_COMMAND_SHARD_COUNT", default=1, ge=1, le=1024)
    event_stream: str = env("NOETL_EVENT_NATS_STREAM", default="NOETL_EVENTS")
    event_subject_prefix: str = env("NOETL_EVENT_NATS_SUBJECT_PREFIX", default="noetl.events")
    event_shard_count: int = env("NOETL_EVENT_NATS_SHARD_COUNT", default=1, ge=1)
    event_max_age_seconds: float = env("NOETL_EVENT_STREAM_MAX_AGE_SECONDS", default=86400.0, gt=0)
    ingest_stream: str = env("NOETL_INGEST_NATS_STREAM", default="NOETL_INGEST")
    ingest_subject: str = env("NOETL_INGEST_NATS_SUBJECT", default="noetl.ingest.events")

    @property
    def enabled(self) -> bool:
        """NATS is optional; without NATS_URL the server runs degraded."""
        return bool(self.url.strip())

    def connect_options(self) -> dict[str, object]:
        """Servers and credentials for nats-py; inline user:pass is stripped from the URL."""
        parts = urlsplit(self.url.strip())
        user, password = self.user or None, self.password or None
        netloc = parts.netloc
        if "@" in netloc:
            cred, netloc = netloc.rsplit("@", 1)
            inline_user, _, inline_pw = cred.partition(":")
            user = user or inline_user or None
            password = password or inline_pw or None
        server = urlunsplit((parts.scheme or "nats", netloc, parts.path, "", ""))
        opts: dict[str, object] = {"servers": [server]}
        if user:
            opts["user"] = user
        if password:
            opts["password"] = password
        return opts

    @property
    def safe_url(self) -> str:
        """The URL without credentials, for logs."""
        return redact_url(self.url)


def redact_url(url: str) -> str:
    """Remove any user:password@ part from a URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, "***@" + host, parts.path, parts.query, parts.fragment))
