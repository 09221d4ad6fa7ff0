"""Server settings (server-contract §18.1)."""

from __future__ import annotations

import os

from pydantic import field_validator, model_validator

from app.config._base import Group, env


class ServerSettings(Group):
    host: str = env("NOETL_HOST", default="0.0.0.0")
    port: int = env("NOETL_PORT", default=8082, ge=1, le=65535)
    workers: int = env("NOETL_WORKERS", default_factory=lambda: os.cpu_count() or 1, ge=1)
    debug: bool = env("NOETL_DEBUG", default=False)
    server_name: str = env("NOETL_SERVER_NAME", default="noetl-control-plane")
    log_level: str = env("NOETL_LOG_LEVEL", default="")
    rust_log: str = env("RUST_LOG", default="")
    public_server_url: str = env("NOETL_PUBLIC_SERVER_URL", "NOETL_SERVER_URL", default="")
    internal_api_token: str = env("NOETL_INTERNAL_API_TOKEN", default="")
    disable_metrics: bool = env("NOETL_DISABLE_METRICS", default=False)
    auto_recreate_runtime: bool = env("NOETL_AUTO_RECREATE_RUNTIME", default=True)
    runtime_sweep_interval: float = env("NOETL_RUNTIME_SWEEP_INTERVAL", default=30.0, gt=0)
    runtime_offline_seconds: float = env("NOETL_RUNTIME_OFFLINE_SECONDS", default=60.0, gt=0)
    heartbeat_retry_after: int = env("NOETL_HEARTBEAT_RETRY_AFTER", default=3, ge=0)
    control_lease_seconds: float = env("NOETL_SERVER_CONTROL_LEASE_SECONDS", default=30.0)
    machine_id: int | None = env("NOETL_SERVER_MACHINE_ID", default=None)
    hostname: str = env("HOSTNAME", "COMPUTERNAME", default="")
    shard_index: int = env("NOETL_SHARD_INDEX", default=0, ge=0)
    shard_count: int = env("NOETL_SHARD_COUNT", default=1, ge=1, le=1024)
    schema_name: str = env("NOETL_SCHEMA", default="noetl", pattern=r"^[a-z_][a-z0-9_]*$")
    region: str = env("NOETL_SERVER_REGION", default="")
    claim_lease_seconds: float = env("NOETL_COMMAND_CLAIM_LEASE_SECONDS", default=120.0, ge=0)
    worker_heartbeat_stale_seconds: float = env(
        "NOETL_COMMAND_WORKER_HEARTBEAT_STALE_SECONDS", default=30.0, ge=0
    )
    healthy_worker_hard_timeout_seconds: float = env(
        "NOETL_COMMAND_CLAIM_HEALTHY_WORKER_HARD_TIMEOUT_SECONDS",
        "NOETL_COMMAND_REAPER_HEALTHY_HARD_TIMEOUT_SECONDS",
        default=1800.0,
    )
    claim_retry_after_seconds: int = env("NOETL_COMMAND_CLAIM_RETRY_AFTER_SECONDS", default=2, ge=0)
    reaper_enabled: bool = env("NOETL_COMMAND_REAPER_ENABLED", default=True)
    reaper_interval_seconds: float = env("NOETL_COMMAND_REAPER_INTERVAL_SECONDS", default=60.0, gt=0)
    reaper_worker_stale_seconds: float = env("NOETL_COMMAND_REAPER_WORKER_STALE_SECONDS", default=60.0)
    reaper_pending_retry_seconds: float = env("NOETL_COMMAND_REAPER_PENDING_RETRY_SECONDS", default=60.0)
    reaper_max_per_run: int = env("NOETL_COMMAND_REAPER_MAX_PER_RUN", default=100, ge=1)
    event_mirror_enabled: bool = env("NOETL_EVENT_MIRROR_ENABLED", default=True)
    outbox_relay_enabled: bool = env("NOETL_OUTBOX_RELAY_ENABLED", default=True)
    outbox_batch_size: int = env("NOETL_OUTBOX_PUBLISHER_BATCH_SIZE", default=100, ge=1, le=1000)
    outbox_inflight_lease_seconds: float = env("NOETL_OUTBOX_INFLIGHT_LEASE_SECONDS", default=60.0, gt=0)
    outbox_relay_kinds_raw: str = env("NOETL_OUTBOX_RELAY_KINDS", default="")
    outbox_pending_count_cap: int = env("NOETL_OUTBOX_PENDING_COUNT_CAP", default=1_000, ge=1)
    tls_cert: str = env("NOETL_TLS_CERT", default="")
    tls_key: str = env("NOETL_TLS_KEY", default="")
    tls_client_ca: str = env("NOETL_TLS_CLIENT_CA", default="")
    migrate_on_start: bool = env("NOETL_MIGRATE_ON_START", default=True)

    @field_validator("machine_id", mode="before")
    @classmethod
    def _blank_machine_id(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("control_lease_seconds")
    @classmethod
    def _min_lease(cls, v: float) -> float:
        return max(v, 5.0)

    @model_validator(mode="after")
    def _check(self) -> ServerSettings:
        if self.machine_id is not None and not 0 <= self.machine_id <= 1023:
            raise ValueError(f"NOETL_SERVER_MACHINE_ID must be within 0..1023 (got {self.machine_id})")
        if self.shard_index >= self.shard_count:
            raise ValueError(
                f"NOETL_SHARD_INDEX ({self.shard_index}) must be < NOETL_SHARD_COUNT ({self.shard_count})"
            )
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("NOETL_TLS_CERT and NOETL_TLS_KEY must be set together (exactly one is set)")
        if self.tls_client_ca and not self.tls_cert:
            raise ValueError("NOETL_TLS_CLIENT_CA requires NOETL_TLS_CERT and NOETL_TLS_KEY")
        return self

    @property
    def effective_log_level(self) -> str:
        """NOETL_LOG_LEVEL, else a bare-level RUST_LOG, else info."""
        if self.log_level:
            return self.log_level.lower()
        bare = self.rust_log.strip().lower()
        if bare in {"trace", "debug", "info", "warn", "warning", "error"}:
            return "debug" if bare == "trace" else ("warning" if bare == "warn" else bare)
        return "info"

    @property
    def outbox_relay_kinds(self) -> list[str]:
        """Outbox kinds the relays claim (empty: every kind), e.g. `command` when the mirror goes to the system pool."""
        return [k.strip() for k in self.outbox_relay_kinds_raw.split(",") if k.strip()]

    @property
    def server_url(self) -> str:
        """Base URL (no /api) that command notifications carry."""
        url = self.public_server_url or f"http://localhost:{self.port}"
        url = url.rstrip("/")
        return url[: -len("/api")] if url.endswith("/api") else url
