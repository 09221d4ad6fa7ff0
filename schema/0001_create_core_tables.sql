-- Core tables of the noetl schema (server-contract §15). Runs with search_path set to the
-- configured schema, so names are unqualified.

CREATE TABLE IF NOT EXISTS resource (
    name VARCHAR PRIMARY KEY,
    meta JSONB
);
INSERT INTO resource (name, meta) VALUES
    ('playbook', '{"description": "Workflow playbook", "executable": true, "catalog": true}'),
    ('credential', '{"description": "Credential definition", "executable": false, "catalog": true}'),
    ('mcp', '{"description": "MCP server definition", "executable": false, "catalog": true}'),
    ('agent', '{"description": "Agent playbook", "executable": true, "catalog": true}'),
    ('memory', '{"description": "Memory resource", "executable": false, "catalog": true}'),
    ('subscription', '{"description": "Subscription", "executable": false, "catalog": true}')
ON CONFLICT (name) DO NOTHING;

CREATE TABLE IF NOT EXISTS catalog (
    catalog_id BIGINT PRIMARY KEY,
    path TEXT NOT NULL,
    version INTEGER NOT NULL,
    kind VARCHAR NOT NULL REFERENCES resource(name),
    content TEXT,
    layout JSONB,
    payload JSONB,
    meta JSONB,
    content_sha256 TEXT,
    created_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    credential_id INTEGER,
    archived_at TIMESTAMPTZ NULL,
    UNIQUE (path, version)
);
CREATE INDEX IF NOT EXISTS idx_catalog_path ON catalog (path, version DESC);
CREATE INDEX IF NOT EXISTS idx_catalog_kind ON catalog (lower(kind));

-- The append-only event log, range-partitioned by execution_id (partitions in 0002).
CREATE TABLE IF NOT EXISTS event (
    execution_id BIGINT NOT NULL,
    catalog_id BIGINT NOT NULL,
    event_id BIGINT NOT NULL,
    parent_event_id BIGINT,
    parent_execution_id BIGINT,
    created_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    event_type VARCHAR NOT NULL,
    node_id VARCHAR,
    node_name VARCHAR,
    node_type VARCHAR,
    status VARCHAR,
    duration DOUBLE PRECISION,
    context JSONB,
    result JSONB,
    meta JSONB,
    error TEXT,
    current_index INTEGER,
    current_item TEXT,
    worker_id VARCHAR,
    distributed_state VARCHAR,
    context_key VARCHAR,
    context_value TEXT,
    trace_component JSONB,
    stack_trace TEXT,
    tenant_id TEXT NOT NULL DEFAULT 'default',
    organization_id TEXT NOT NULL DEFAULT 'default',
    stream_id TEXT,
    stream_version BIGINT,
    aggregate_id TEXT,
    aggregate_type TEXT,
    schema_name TEXT,
    schema_version INTEGER NOT NULL DEFAULT 1,
    event_time TIMESTAMPTZ NOT NULL DEFAULT now(),
    ingest_time TIMESTAMPTZ NOT NULL DEFAULT now(),
    producer TEXT,
    causation_id TEXT,
    correlation_id TEXT,
    idempotency_key TEXT,
    payload_ref JSONB,
    envelope_checksum TEXT,
    prev_event_id BIGINT,
    command_id BIGINT,
    stage_id BIGINT,
    frame_id BIGINT,
    PRIMARY KEY (execution_id, event_id),
    CONSTRAINT fk_event_catalog FOREIGN KEY (catalog_id) REFERENCES catalog (catalog_id),
    CONSTRAINT chk_event_result_shape CHECK (
        result IS NULL OR (
            jsonb_typeof(result) = 'object'
            AND jsonb_typeof(result -> 'status') = 'string'
            AND (result - 'status' - 'reference' - 'context') = '{}'::jsonb
            AND (NOT result ? 'reference' OR jsonb_typeof(result -> 'reference') = 'object')
            AND (NOT result ? 'context' OR jsonb_typeof(result -> 'context') = 'object')
        )
    )
) PARTITION BY RANGE (execution_id);

CREATE INDEX IF NOT EXISTS idx_event_execution_id ON event (execution_id);
CREATE INDEX IF NOT EXISTS idx_event_catalog_id ON event (catalog_id);
CREATE INDEX IF NOT EXISTS idx_event_type ON event (event_type);
CREATE INDEX IF NOT EXISTS idx_event_status ON event (status);
CREATE INDEX IF NOT EXISTS idx_event_created_at ON event (created_at);
CREATE INDEX IF NOT EXISTS idx_event_node_name ON event (node_name);
CREATE INDEX IF NOT EXISTS idx_event_parent_event_id ON event (parent_event_id);
CREATE INDEX IF NOT EXISTS idx_event_parent_execution_id ON event (parent_execution_id);
CREATE INDEX IF NOT EXISTS idx_event_exec_event_desc ON event (execution_id, event_id DESC);
CREATE INDEX IF NOT EXISTS idx_event_exec_type_event ON event (execution_id, event_type, event_id DESC);
CREATE INDEX IF NOT EXISTS idx_event_idempotency_key ON event (execution_id, (meta ->> 'idempotency_key'))
    WHERE meta ? 'idempotency_key';
CREATE INDEX IF NOT EXISTS idx_event_meta_command ON event (execution_id, event_type, (meta ->> 'command_id'), event_id DESC)
    WHERE meta ? 'command_id';
CREATE INDEX IF NOT EXISTS idx_event_command_issued ON event (created_at DESC, event_id DESC, execution_id, (meta ->> 'command_id'))
    WHERE event_type = 'command.issued';
CREATE INDEX IF NOT EXISTS idx_event_batch_request ON event ((meta ->> 'batch_request_id'), event_id DESC);
CREATE INDEX IF NOT EXISTS idx_event_started ON event (event_id DESC)
    INCLUDE (execution_id, catalog_id, parent_execution_id, created_at) WHERE event_type = 'playbook_started';
CREATE INDEX IF NOT EXISTS idx_event_initialized ON event (event_id DESC)
    INCLUDE (execution_id, catalog_id, parent_execution_id, created_at) WHERE event_type = 'playbook.initialized';
CREATE INDEX IF NOT EXISTS idx_event_prev ON event (execution_id, prev_event_id) WHERE prev_event_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_event_command_id ON event (command_id);
CREATE INDEX IF NOT EXISTS idx_event_exec_type_command ON event (execution_id, event_type, command_id, event_id DESC);
CREATE INDEX IF NOT EXISTS idx_event_event_id ON event (event_id);

-- Append-only: UPDATE and DELETE are rejected except inside the cleanup path, which sets
-- the transaction-local flag noetl.allow_event_delete (server-contract §11.6).
CREATE OR REPLACE FUNCTION event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND coalesce(current_setting('noetl.allow_event_delete', true), '') = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'noetl.event is append-only (% rejected)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
DROP TRIGGER IF EXISTS trg_event_append_only ON event;
CREATE TRIGGER trg_event_append_only BEFORE UPDATE OR DELETE ON event
    FOR EACH ROW EXECUTE FUNCTION event_append_only();

CREATE OR REPLACE VIEW event_log AS SELECT * FROM event;

-- Mutable command projection, hash-partitioned into 16 partitions.
CREATE TABLE IF NOT EXISTS command (
    command_id BIGINT NOT NULL,
    event_id BIGINT NOT NULL,
    execution_id BIGINT NOT NULL,
    catalog_id BIGINT NOT NULL,
    parent_execution_id BIGINT,
    parent_command_id BIGINT,
    step_name TEXT NOT NULL,
    tool_kind TEXT,
    status TEXT NOT NULL DEFAULT 'PENDING',
    worker_id TEXT,
    claimed_at TIMESTAMPTZ,
    started_at TIMESTAMPTZ,
    completed_at TIMESTAMPTZ,
    attempt INTEGER NOT NULL DEFAULT 1,
    context JSONB,
    context_key TEXT,
    loop_event_id TEXT,
    iter_index INTEGER,
    meta JSONB,
    result JSONB,
    error TEXT,
    latest_event_id BIGINT,
    prev_event_id BIGINT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    stage_id BIGINT,
    frame_id BIGINT,
    PRIMARY KEY (execution_id, command_id)
) PARTITION BY HASH (execution_id);

DO $$
BEGIN
    FOR i IN 0..15 LOOP
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS command_p%s PARTITION OF command FOR VALUES WITH (MODULUS 16, REMAINDER %s)',
            lpad(i::text, 2, '0'), i);
    END LOOP;
END;
$$;

CREATE INDEX IF NOT EXISTS idx_command_execution ON command (execution_id);
CREATE INDEX IF NOT EXISTS idx_command_exec_step ON command (execution_id, step_name);
CREATE INDEX IF NOT EXISTS idx_command_status_open ON command (status) WHERE status IN ('PENDING', 'CLAIMED');
CREATE INDEX IF NOT EXISTS idx_command_exec_status ON command (execution_id, status)
    WHERE status IN ('PENDING', 'CLAIMED', 'RUNNING');
CREATE INDEX IF NOT EXISTS idx_command_worker ON command (worker_id, updated_at) WHERE status = 'CLAIMED';
CREATE INDEX IF NOT EXISTS idx_command_command_id ON command (command_id);
CREATE INDEX IF NOT EXISTS idx_command_event_id ON command (event_id);
CREATE INDEX IF NOT EXISTS idx_command_loop ON command (execution_id, step_name, loop_event_id);

CREATE TABLE IF NOT EXISTS execution (
    execution_id BIGINT PRIMARY KEY,
    catalog_id BIGINT NOT NULL REFERENCES catalog (catalog_id),
    parent_execution_id BIGINT,
    status VARCHAR NOT NULL,
    last_event_type VARCHAR,
    last_node_name VARCHAR,
    last_event_id BIGINT,
    start_time TIMESTAMPTZ,
    end_time TIMESTAMPTZ,
    error TEXT,
    path TEXT,
    version INTEGER,
    workload JSONB,
    result JSONB,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    state JSONB
);
CREATE INDEX IF NOT EXISTS idx_execution_status ON execution (status);
CREATE INDEX IF NOT EXISTS idx_execution_catalog ON execution (catalog_id);
CREATE INDEX IF NOT EXISTS idx_execution_created ON execution (created_at);
CREATE INDEX IF NOT EXISTS idx_execution_start ON execution (start_time);
CREATE INDEX IF NOT EXISTS idx_execution_parent ON execution (parent_execution_id) WHERE parent_execution_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_execution_list ON execution ((COALESCE(start_time, created_at)) DESC, execution_id DESC);

CREATE TABLE IF NOT EXISTS outbox (
    outbox_id BIGSERIAL PRIMARY KEY,
    execution_id BIGINT,
    event_id BIGINT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'event' CHECK (kind IN ('event', 'command')),
    subject TEXT,
    payload JSONB NOT NULL,
    payload_bytes BYTEA,
    payload_codec TEXT NOT NULL DEFAULT 'arrow-feather',
    status TEXT NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'IN_FLIGHT', 'PUBLISHED', 'FAILED')),
    attempts INTEGER NOT NULL DEFAULT 0,
    available_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    locked_at TIMESTAMPTZ,
    published_at TIMESTAMPTZ,
    last_error TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (event_id, kind)
);
CREATE INDEX IF NOT EXISTS idx_outbox_ready ON outbox (status, available_at, outbox_id)
    WHERE status IN ('PENDING', 'FAILED');
CREATE INDEX IF NOT EXISTS idx_outbox_inflight ON outbox (locked_at) WHERE status = 'IN_FLIGHT';
CREATE INDEX IF NOT EXISTS idx_outbox_execution_event ON outbox (execution_id, event_id);
CREATE INDEX IF NOT EXISTS idx_outbox_published ON outbox (published_at) WHERE status = 'PUBLISHED';

CREATE TABLE IF NOT EXISTS credential (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    data_encrypted TEXT NOT NULL,
    schema JSONB,
    meta JSONB,
    tags TEXT[],
    description TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_credential_type ON credential (type);

CREATE TABLE IF NOT EXISTS keychain (
    cache_key TEXT PRIMARY KEY,
    keychain_name TEXT NOT NULL,
    catalog_id BIGINT NOT NULL REFERENCES catalog (catalog_id) ON DELETE CASCADE,
    credential_type TEXT NOT NULL,
    cache_type TEXT NOT NULL CHECK (cache_type IN ('secret', 'token')),
    scope_type TEXT NOT NULL CHECK (scope_type IN ('local', 'global', 'shared')),
    execution_id BIGINT,
    parent_execution_id BIGINT,
    data_encrypted TEXT NOT NULL,
    schema JSONB,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    accessed_at TIMESTAMPTZ,
    access_count INTEGER DEFAULT 0,
    auto_renew BOOLEAN DEFAULT false,
    renew_config JSONB
);
CREATE INDEX IF NOT EXISTS idx_keychain_execution ON keychain (execution_id);
CREATE INDEX IF NOT EXISTS idx_keychain_parent_execution ON keychain (parent_execution_id);
CREATE INDEX IF NOT EXISTS idx_keychain_expires ON keychain (expires_at);
CREATE INDEX IF NOT EXISTS idx_keychain_types ON keychain (cache_type, scope_type);
CREATE INDEX IF NOT EXISTS idx_keychain_name ON keychain (keychain_name);
CREATE INDEX IF NOT EXISTS idx_keychain_catalog ON keychain (catalog_id);
CREATE INDEX IF NOT EXISTS idx_keychain_name_catalog ON keychain (keychain_name, catalog_id);

CREATE TABLE IF NOT EXISTS runtime (
    runtime_id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('worker_pool', 'server_api', 'broker')),
    uri TEXT,
    status TEXT NOT NULL,
    labels JSONB,
    capabilities JSONB,
    capacity INTEGER,
    runtime JSONB,
    heartbeat TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (kind, name)
);
CREATE INDEX IF NOT EXISTS idx_runtime_kind ON runtime (kind);
CREATE INDEX IF NOT EXISTS idx_runtime_status ON runtime (status);

CREATE TABLE IF NOT EXISTS secret_audit (
    audit_id BIGINT PRIMARY KEY,
    occurred_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    credential TEXT NOT NULL,
    operation TEXT NOT NULL,
    outcome TEXT NOT NULL,
    worker_id TEXT,
    execution_id BIGINT,
    parent_execution_id BIGINT,
    server_region TEXT,
    broker_region TEXT,
    kek_version TEXT,
    notes TEXT
);
CREATE INDEX IF NOT EXISTS idx_secret_audit_credential ON secret_audit (credential, occurred_at DESC);
CREATE INDEX IF NOT EXISTS idx_secret_audit_execution ON secret_audit (execution_id) WHERE execution_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_secret_audit_outcome ON secret_audit (outcome, occurred_at DESC);
CREATE INDEX IF NOT EXISTS idx_secret_audit_time ON secret_audit (occurred_at DESC);

CREATE TABLE IF NOT EXISTS projection_checkpoint (
    projection TEXT NOT NULL,
    shard INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL,
    position BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, shard)
);
