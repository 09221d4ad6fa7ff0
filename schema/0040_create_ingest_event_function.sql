-- One non-triggering event (command.started, call.done, step.* ...) in one round trip: the execution lock,
-- the execution's catalog id, the lifecycle de-duplication read, the event insert, its mirror outbox row
-- and the command projection, in the statement's own transaction (app/services/events.py, fast path).
-- The statements match app/store/rows.py INGEST_EVENTS and events.Ingest.load; each statement of a
-- VOLATILE plpgsql function takes a fresh snapshot, so the reads after the lock see every event
-- committed by the previous holder (READ COMMITTED).
--
-- Outcomes: 'missing' (no execution row: the caller takes the general path; nothing written),
-- 'duplicate' (a lifecycle event of this type for this command is stored: its event_id and worker_id;
-- nothing written), 'inserted' or 'conflict' (same (execution_id, event_id) already stored).
CREATE OR REPLACE FUNCTION ingest_event(
    p_execution_id BIGINT,
    p_event JSONB,            -- the prepared row without catalog_id (app/store/rows.py EVENT_COLUMNS)
    p_dedupe_type TEXT,       -- lifecycle event type to de-duplicate on, or NULL
    p_dedupe_command BIGINT,  -- its command id, or NULL
    p_subject TEXT,           -- mirror subject, NULL when the mirror is off
    p_ingest_time TEXT,       -- the envelope's ingest_time
    p_update JSONB            -- one rows.COMMAND_UPDATE_COLUMNS row, or NULL
) RETURNS TABLE (outcome TEXT, event_id BIGINT, worker_id TEXT)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    v_catalog BIGINT;
    v_dup_event BIGINT;
    v_dup_worker TEXT;
    v_seq BIGINT;
BEGIN
    PERFORM pg_advisory_xact_lock(p_execution_id);
    SELECT x.catalog_id INTO v_catalog FROM execution x WHERE x.execution_id = p_execution_id;
    IF v_catalog IS NULL THEN
        RETURN QUERY SELECT 'missing'::text, NULL::bigint, NULL::text;
        RETURN;
    END IF;
    IF p_dedupe_command IS NOT NULL THEN
        SELECT e.event_id, e.worker_id INTO v_dup_event, v_dup_worker FROM event e
         WHERE e.execution_id = p_execution_id AND e.event_type = p_dedupe_type
           AND e.command_id = p_dedupe_command LIMIT 1;
        IF v_dup_event IS NOT NULL THEN
            RETURN QUERY SELECT 'duplicate'::text, v_dup_event, v_dup_worker;
            RETURN;
        END IF;
    END IF;

    WITH ins AS (
        INSERT INTO event (execution_id, catalog_id, event_id, parent_event_id, parent_execution_id, created_at,
                           event_type, node_id, node_name, node_type, status, context, result, meta, error,
                           worker_id, command_id, prev_event_id, duration, tenant_id, organization_id,
                           stack_trace, trace_component)
        SELECT x.execution_id, v_catalog, x.event_id, x.parent_event_id, x.parent_execution_id,
               COALESCE(x.created_at, (now() AT TIME ZONE 'utc')), x.event_type, x.node_id, x.node_name,
               x.node_type, COALESCE(x.status, 'PENDING'), x.context, x.result, x.meta, x.error, x.worker_id,
               x.command_id, x.prev_event_id, x.duration, COALESCE(x.tenant_id, 'default'),
               COALESCE(x.organization_id, 'default'), x.stack_trace, x.trace_component
          FROM jsonb_to_record(p_event) AS x(execution_id bigint, event_id bigint, parent_event_id bigint,
               parent_execution_id bigint, created_at timestamp, event_type varchar, node_id varchar,
               node_name varchar, node_type varchar, status varchar, context jsonb, result jsonb, meta jsonb,
               error text, worker_id varchar, command_id bigint, prev_event_id bigint, duration float8,
               tenant_id text, organization_id text, stack_trace text, trace_component jsonb)
        ON CONFLICT (execution_id, event_id) DO NOTHING
        RETURNING event.execution_id, event.catalog_id, event.event_id, event.event_type, event.node_id,
                  event.node_name, event.status, event.result, event.meta, event.parent_event_id,
                  event.parent_execution_id, event.command_id, event.created_at, event.seq
    ), ob AS (
        INSERT INTO outbox (execution_id, event_id, kind, subject, payload, payload_codec)
        SELECT i.execution_id, i.event_id, 'event', p_subject, jsonb_build_object(
                   'catalog_id', i.catalog_id, 'command_id', i.command_id, 'created_at', i.ts,
                   'event_id', i.event_id, 'event_time', i.ts, 'event_type', i.event_type,
                   'execution_id', i.execution_id, 'frame_id', NULL, 'ingest_time', p_ingest_time,
                   'meta', i.meta, 'node_id', i.node_id, 'node_name', i.node_name,
                   'parent_event_id', i.parent_event_id, 'parent_execution_id', i.parent_execution_id,
                   'result', i.result, 'stage_id', NULL, 'status', i.status), 'json'
          FROM (SELECT ins.*,
                       to_char(ins.created_at, 'YYYY-MM-DD"T"HH24:MI:SS') || CASE
                           WHEN extract(microseconds FROM ins.created_at)::int % 1000000 = 0 THEN 'Z'
                           WHEN extract(microseconds FROM ins.created_at)::int % 1000 = 0
                               THEN '.' || lpad(((extract(microseconds FROM ins.created_at)::int % 1000000)
                                                 / 1000)::text, 3, '0') || 'Z'
                           ELSE '.' || lpad((extract(microseconds FROM ins.created_at)::int % 1000000)::text,
                                            6, '0') || 'Z'
                       END AS ts
                  FROM ins) AS i
         WHERE p_subject IS NOT NULL
        ON CONFLICT (event_id, kind) DO NOTHING
    ), cu AS (
        UPDATE command c SET
               status = CASE u.kind WHEN 'started' THEN 'RUNNING' WHEN 'final' THEN u.final
                                    WHEN 'claimed' THEN 'CLAIMED' ELSE c.status END,
               started_at = CASE WHEN u.kind = 'started' THEN COALESCE(c.started_at, now()) ELSE c.started_at END,
               completed_at = CASE WHEN u.kind = 'final' THEN now() ELSE c.completed_at END,
               result = CASE WHEN u.kind = 'final' THEN u.result ELSE c.result END,
               error = CASE WHEN u.kind = 'final' THEN u.error ELSE c.error END,
               worker_id = CASE WHEN u.kind = 'claimed' THEN u.worker_id ELSE c.worker_id END,
               claimed_at = CASE WHEN u.kind = 'claimed' THEN now() ELSE c.claimed_at END,
               latest_event_id = u.event_id, updated_at = now()
          FROM jsonb_to_record(p_update) AS u(command_id bigint, event_id bigint, ord int, kind text,
               final text, result jsonb, error text, worker_id text)
         WHERE p_update IS NOT NULL AND c.execution_id = p_execution_id AND c.command_id = u.command_id
           AND u.event_id IN (SELECT ins.event_id FROM ins)
           AND (u.kind <> 'started' OR c.status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED'))
           AND (u.kind <> 'claimed' OR c.status = 'PENDING')
    )
    SELECT ins.seq INTO v_seq FROM ins;
    IF v_seq IS NULL THEN
        RETURN QUERY SELECT 'conflict'::text, (p_event ->> 'event_id')::bigint, NULL::text;
    ELSE
        RETURN QUERY SELECT 'inserted'::text, (p_event ->> 'event_id')::bigint, NULL::text;
    END IF;
END;
$$;
