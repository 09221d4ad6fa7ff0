"""Every server metric, declared once against a registry made at start-up (tests get fresh ones)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from app import __version__

_LAT = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """Server metrics; execution_id is never a label."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.up = Gauge("noetl_up", "1 while the process is serving", registry=r)
        self.build_info = Gauge("noetl_server_build_info", "Build information", ["version"], registry=r)
        self.build_info.labels(__version__).set(1)
        self.http_requests = Counter(
            "noetl_http_requests_total",
            "HTTP requests by route template",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "noetl_http_request_duration_seconds",
            "HTTP request duration by route template",
            ["method", "route"],
            buckets=_LAT,
            registry=r,
        )
        self.events_ingested = Counter(
            "noetl_events_ingested_total", "Events stored", ["event_type", "status"], registry=r
        )
        self.event_ingest_duration = Histogram(
            "noetl_event_ingest_duration_seconds", "Event ingestion duration", buckets=_LAT, registry=r
        )
        self.command_publish = Counter(
            "noetl_command_publish_total", "Command notifications published", ["route", "pool"], registry=r
        )
        self.execute_outcomes = Counter(
            "noetl_execute_outcomes_total", "POST /api/execute outcomes", ["outcome"], registry=r
        )
        self.events_projected = Counter(
            "noetl_events_projected_total", "Events inserted by events/project", registry=r
        )
        self.command_claims = Counter("noetl_command_claims_total", "Claim outcomes", ["outcome"], registry=r)
        self.reaper_republished = Counter(
            "noetl_command_reaper_republished_total", "Commands re-published by the reaper", registry=r
        )
        self.outbox_pending = Gauge("noetl_outbox_pending", "Claimable outbox rows", registry=r)
        self.outbox_published = Counter(
            "noetl_outbox_published_total", "Outbox rows published", ["kind"], registry=r
        )
        self.outbox_failed = Counter(
            "noetl_outbox_failed_total", "Outbox publish failures", ["kind"], registry=r
        )
        self.outbox_inflight_reclaimed = Counter(
            "noetl_outbox_inflight_reclaimed_total", "IN_FLIGHT rows reclaimed after their lease", registry=r
        )
        self.projection_lag = Gauge(
            "noetl_projection_lag_events",
            "Events not yet applied by a projection",
            ["projection"],
            registry=r,
        )
        self.write_requests = Counter(
            "noetl_write_requests_total",
            "Mutating API requests by endpoint",
            ["endpoint", "status"],
            registry=r,
        )
        self.write_duration = Histogram(
            "noetl_write_request_duration_seconds",
            "Mutating API request duration by endpoint",
            ["endpoint"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.consumer_processed = Counter(
            "noetl_consumer_processed_total",
            "Messages processed by internal consumers",
            ["consumer"],
            registry=r,
        )
        self.consumer_failed = Counter(
            "noetl_consumer_failed_total", "Messages failed in internal consumers", ["consumer"], registry=r
        )
        self.consumer_duration = Histogram(
            "noetl_consumer_duration_seconds",
            "Internal consumer handling time",
            ["consumer"],
            buckets=_LAT,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "noetl_consumer_lag", "Pending messages or rows per internal consumer", ["consumer"], registry=r
        )
        # Internal operations (cleanup, residency audit).
        self.cleanup_purged = Counter(
            "noetl_cleanup_purged_total", "Rows deleted by the retention purge", ["kind"], registry=r
        )
        self.cleanup_runs = Counter(
            "noetl_cleanup_runs_total", "Retention purge runs", ["trigger", "outcome"], registry=r
        )
        self.residency_audit_violations = Gauge(
            "noetl_residency_audit_violations",
            "Residency violations found by the last residency audit",
            ["kind"],
            registry=r,
        )
        self.residency_audit_runs = Counter(
            "noetl_residency_audit_runs_total", "Residency audit runs", ["trigger", "outcome"], registry=r
        )
