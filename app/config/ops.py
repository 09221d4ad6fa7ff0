"""Internal-operations settings: retention (cleanup), schedules of the ops consumers, projections."""

from __future__ import annotations

from app.config._base import Group, env


class OpsSettings(Group):
    # Retention (POST /api/internal/cleanup/purge defaults, server-contract §11.6).
    command_retention_days: float = env("NOETL_RETENTION_COMMAND_DAYS", default=7.0, ge=0)
    event_retention_days: float = env("NOETL_RETENTION_EVENT_DAYS", default=0.0, ge=0)
    outbox_retention_days: float = env("NOETL_RETENTION_OUTBOX_DAYS", default=7.0, ge=0)
    runtime_stale_minutes: float = env("NOETL_RETENTION_RUNTIME_STALE_MINUTES", default=60.0, ge=0)
    cleanup_batch_size: int = env("NOETL_CLEANUP_BATCH_SIZE", default=1000, ge=1, le=100000)
    cleanup_max_batches: int = env("NOETL_CLEANUP_MAX_BATCHES", default=100, ge=1)
    # Schedules of the consumers role's periodic work (seconds; 0 disables the loop).
    cleanup_interval_seconds: float = env("NOETL_CLEANUP_INTERVAL_SECONDS", default=3600.0, ge=0)
    residency_audit_interval_seconds: float = env(
        "NOETL_RESIDENCY_AUDIT_INTERVAL_SECONDS", default=900.0, ge=0
    )
    # Read-model projectors fed by the event mirror.
    projections_enabled: bool = env("NOETL_PROJECTIONS_ENABLED", default=True)
    projection_lag_interval_seconds: float = env("NOETL_PROJECTION_LAG_INTERVAL_SECONDS", default=5.0, gt=0)
    worker_live_seconds: float = env("NOETL_WORKER_LIVE_SECONDS", default=60.0, gt=0)
