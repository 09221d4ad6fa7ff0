"""Worker settings (server-contract §18.5)."""

from __future__ import annotations

import uuid

from pydantic import field_validator

from app.config._base import Group, env


class WorkerSettings(Group):
    worker_id: str = env("WORKER_ID", default_factory=lambda: f"worker-{uuid.uuid4().hex[:12]}")
    pool_name: str = env("WORKER_POOL_NAME", default="default")
    heartbeat_interval: float = env("WORKER_HEARTBEAT_INTERVAL", default=15.0, gt=0)
    max_concurrent: int = env("WORKER_MAX_CONCURRENT", default=4, ge=1)
    server_url: str = env("NOETL_SERVER_URL", default="http://localhost:8082")
    consumer: str = env("NATS_CONSUMER", default="")
    filter_subject: str = env(
        "NOETL_FEED_FILTER_SUBJECT", "NATS_FILTER_SUBJECT", default="noetl.commands.shared.>"
    )
    ack_wait_seconds: float = env("NOETL_WORKER_NATS_ACK_WAIT_SECONDS", default=30.0, gt=0)
    max_deliver: int = env("NOETL_WORKER_NATS_MAX_DELIVER", default=1000)
    max_ack_pending: int = env("NOETL_WORKER_NATS_MAX_ACK_PENDING", default=64, ge=1)
    command_timeout_seconds: float = env("NOETL_WORKER_COMMAND_TIMEOUT_SECONDS", default=180.0, gt=0)
    drain_timeout_seconds: float = env("NOETL_WORKER_DRAIN_TIMEOUT_SECONDS", default=60.0, ge=0)
    python_memory_limit_mb: int = env("NOETL_WORKER_PYTHON_MEMORY_MB", default=1024, ge=0)
    cancel_poll_seconds: float = env("NOETL_WORKER_CANCEL_POLL_SECONDS", default=3.0, gt=0)
    snowflake_node_id: int | None = env("NOETL_SNOWFLAKE_NODE_ID", "NOETL_SHARD_ID", default=None)
    snowflake_epoch_ms: int | None = env("NOETL_SNOWFLAKE_EPOCH_MS", default=None)
    keychain_env_vars: str = env("NOETL_KEYCHAIN_ENV_VARS", default="")
    keychain_strict: bool = env("NOETL_KEYCHAIN_STRICT", default=False)
    internal_api_token: str = env("NOETL_INTERNAL_API_TOKEN", default="", repr=False)
    sealed_credentials: bool = env("NOETL_SEALED_CREDENTIALS", default=False)
    tls_client_cert: str = env("NOETL_TLS_CLIENT_CERT", default="")
    tls_client_key: str = env("NOETL_TLS_CLIENT_KEY", default="")
    tls_ca: str = env("NOETL_TLS_CA", default="")

    @field_validator("snowflake_node_id", "snowflake_epoch_ms", mode="before")
    @classmethod
    def _blank(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @property
    def pool_segment(self) -> str:
        """The pool token of the filter subject (noetl.commands.<pool>.>)."""
        parts = self.filter_subject.split(".")
        return parts[2] if len(parts) > 2 and parts[2] not in {">", "*"} else ""

    @property
    def durable_name(self) -> str:
        """NATS_CONSUMER or noetl_worker_pool_<pool>."""
        return self.consumer or f"noetl_worker_pool_{self.pool_segment or 'all'}"

    @property
    def env_allowlist(self) -> list[str]:
        """Env var names exposed to playbooks as credential aliases."""
        return [v.strip() for v in self.keychain_env_vars.split(",") if v.strip()]
