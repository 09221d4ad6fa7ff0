-- Read models built from the event mirror by projections/ (conventions §5). Each is rebuildable from
-- noetl.event with `noetl-control-plane replay`; projection_checkpoint holds each one's stream position.

CREATE TABLE IF NOT EXISTS rm_execution_summary (
    execution_id BIGINT PRIMARY KEY,
    path TEXT,
    status TEXT NOT NULL,
    steps JSONB NOT NULL DEFAULT '{}'::jsonb,  -- {step: {status, started_at, ended_at, duration_s}}
    steps_total INTEGER NOT NULL DEFAULT 0,
    steps_done INTEGER NOT NULL DEFAULT 0,
    steps_failed INTEGER NOT NULL DEFAULT 0,
    started_at TIMESTAMPTZ,
    ended_at TIMESTAMPTZ,
    duration_s DOUBLE PRECISION,
    last_error TEXT,
    last_event_id BIGINT NOT NULL DEFAULT 0,
    events INTEGER NOT NULL DEFAULT 0,
    last_seq BIGINT NOT NULL DEFAULT 0,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_rm_summary_path ON rm_execution_summary (path, status);

CREATE TABLE IF NOT EXISTS rm_playbook_stats (
    path TEXT PRIMARY KEY,
    runs INTEGER NOT NULL DEFAULT 0,
    completed INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    p50_duration_s DOUBLE PRECISION,
    p95_duration_s DOUBLE PRECISION,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The command facts needed to explain a stuck execution; outbox state, heartbeats and live workers are
-- joined in at read time from the tables that own them.
CREATE TABLE IF NOT EXISTS rm_command_state (
    execution_id BIGINT NOT NULL,
    command_id BIGINT NOT NULL,
    event_id BIGINT NOT NULL,
    step_name TEXT,
    pool TEXT,
    status TEXT NOT NULL,
    worker_id TEXT,
    issued_at TIMESTAMPTZ,
    claimed_at TIMESTAMPTZ,
    last_event_id BIGINT NOT NULL DEFAULT 0,
    last_seq BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (execution_id, command_id)
);
CREATE INDEX IF NOT EXISTS idx_rm_command_open ON rm_command_state (execution_id)
    WHERE status IN ('PENDING', 'CLAIMED', 'RUNNING');

-- One row per execution the playbook-statistics projection has seen; rm_playbook_stats aggregates it.
CREATE TABLE IF NOT EXISTS rm_playbook_run (
    execution_id BIGINT PRIMARY KEY,
    path TEXT,
    status TEXT NOT NULL,
    started_at TIMESTAMPTZ,
    ended_at TIMESTAMPTZ,
    duration_s DOUBLE PRECISION,
    last_event_id BIGINT NOT NULL DEFAULT 0,
    last_seq BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS idx_rm_playbook_run_path ON rm_playbook_run (path);
