-- Insertion order of events. Every event of an execution is inserted under
-- pg_advisory_xact_lock(execution_id), so per execution this order equals commit order: the order in
-- which the orchestrator observed the events. Folding in this order reproduces its decisions exactly,
-- even when producers' clocks skew their snowflake ids. Rows written by older servers have NULL and
-- fall back to event_id order.
CREATE SEQUENCE IF NOT EXISTS event_seq;
ALTER TABLE event ADD COLUMN IF NOT EXISTS seq BIGINT DEFAULT nextval('event_seq');
CREATE INDEX IF NOT EXISTS idx_event_exec_seq ON event (execution_id, seq);
ALTER TABLE execution ADD COLUMN IF NOT EXISTS state_seq BIGINT NOT NULL DEFAULT 0;
