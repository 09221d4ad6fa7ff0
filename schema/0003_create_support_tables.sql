-- Variables, result store, sink state, projections, schedules (server-contract §15.9, §15.10).
CREATE TABLE IF NOT EXISTS transient (
    execution_id BIGINT NOT NULL,
    var_name TEXT NOT NULL,
    var_type TEXT NOT NULL DEFAULT 'user_defined'
        CHECK (var_type IN ('user_defined', 'step_result', 'computed', 'iterator_state')),
    var_value JSONB NOT NULL,
    source_step TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    accessed_at TIMESTAMPTZ,
    access_count INTEGER NOT NULL DEFAULT 0,
    expires_at TIMESTAMPTZ,
    scope TEXT,
    PRIMARY KEY (execution_id, var_name)
);

CREATE TABLE IF NOT EXISTS result_store (
    result_id BIGINT PRIMARY KEY,
    execution_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    scope TEXT NOT NULL,
    source_step TEXT,
    data JSONB NOT NULL,
    bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    media_type TEXT NOT NULL DEFAULT 'application/json',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS idx_result_store_exec_name ON result_store (execution_id, name);
CREATE INDEX IF NOT EXISTS idx_result_store_created ON result_store (created_at);

CREATE TABLE IF NOT EXISTS sink_pending (
    execution_id BIGINT PRIMARY KEY,
    worker_id TEXT,
    marked_at TIMESTAMPTZ
);

CREATE TABLE IF NOT EXISTS projection (
    projection_id TEXT PRIMARY KEY,
    projection_type TEXT NOT NULL,
    tenant_id TEXT NOT NULL DEFAULT 'default',
    organization_id TEXT NOT NULL DEFAULT 'default',
    execution_id BIGINT,
    version BIGINT NOT NULL DEFAULT 0,
    source_event_id BIGINT,
    state JSONB,
    checksum TEXT,
    meta JSONB,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS projection_snapshot (
    tenant_id TEXT NOT NULL DEFAULT 'default',
    organization_id TEXT NOT NULL DEFAULT 'default',
    aggregate_type TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    snapshot JSONB NOT NULL,
    checksum TEXT,
    meta JSONB,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, organization_id, aggregate_type, aggregate_id)
);

CREATE TABLE IF NOT EXISTS schedule (
    schedule_id BIGINT PRIMARY KEY,
    playbook_path TEXT NOT NULL,
    playbook_version INTEGER,
    cron TEXT,
    interval_seconds INTEGER,
    enabled BOOLEAN NOT NULL DEFAULT true,
    timezone TEXT NOT NULL DEFAULT 'UTC',
    next_run_at TIMESTAMPTZ,
    last_run_at TIMESTAMPTZ,
    last_status TEXT,
    input_payload JSONB,
    meta JSONB,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Database-side snowflake kept as a fallback only (server-contract §16.2); the server never calls it.
CREATE SEQUENCE IF NOT EXISTS snowflake_seq;
CREATE OR REPLACE FUNCTION snowflake_id() RETURNS BIGINT LANGUAGE sql AS $$
    SELECT (((extract(epoch FROM clock_timestamp()) * 1000)::bigint - 1704067200000) << 23)
           | ((1 & 31) << 18) | (nextval('snowflake_seq') % 1024);
$$;
