-- Distributed mode on a Citus coordinator: spans and every per-trace table sharded by
-- trace_id and co-located, so a trace's spans, its summary row, its extent and its log
-- entries live on one worker and keeping a summary exact never crosses nodes. Applied
-- after the single-node migrations, which it adapts rather than edits.

-- Citus refuses triggers on distributed tables unless told they are safe. Ours are: the
-- row trigger below writes only the co-located log shard of the span's own trace_id.
-- Set for the database, so partitions created later (upkeep, the loader, foreign tools
-- that ATTACH) carry their cloned trigger to their shards.
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET citus.enable_unsafe_triggers = on', current_database());
END $$;
SET LOCAL citus.enable_unsafe_triggers = on;
-- Functions created below are propagated to the workers, which Citus does over one
-- connection per node: the whole migration must be sequential.
SET LOCAL citus.multi_shard_modify_mode TO 'sequential';

-- Statement triggers with transition tables break COPY on distributed tables: off before
-- distributing (this also empties the log; the summary table is rebuilt from spans).
SELECT srql_summary_set_capture(false);

SELECT create_distributed_table('otel_traces', 'trace_id');

-- The log loses its arrival id: a unique key must include trace_id on Citus, and each
-- shard drains its own entries oldest first by logged_at.
DROP TABLE srql_summary_log;
CREATE TABLE srql_summary_log (
    trace_id  text NOT NULL,
    first_ts  timestamptz,
    last_ts   timestamptz,
    logged_at timestamptz NOT NULL DEFAULT now()
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
        autovacuum_vacuum_cost_delay = 0);
CREATE INDEX srql_summary_log_logged_at_idx ON srql_summary_log (logged_at);
SELECT create_distributed_table('srql_summary_log', 'trace_id', colocate_with => 'otel_traces');
SELECT create_distributed_table('srql_summary_extent', 'trace_id', colocate_with => 'otel_traces');

-- One log entry per written row. Row-level because transition tables do not work on
-- distributed tables; it runs on the worker, inside the writer's transaction, and its
-- insert is routed to the local log shard (same trace_id, same shard group).
CREATE FUNCTION srql_summary_log_row() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO srql_summary_log (trace_id, first_ts, last_ts)
        VALUES (NEW.trace_id, NEW.timestamp, NEW.timestamp);
    END IF;
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO srql_summary_log (trace_id) VALUES (OLD.trace_id);
    END IF;
    RETURN NULL;
END $$;

-- Capture is one row trigger on the parent: PostgreSQL clones it onto every partition,
-- present and future, and Citus onto their shards, so partitions need nothing of their
-- own (the single-node per-partition statement triggers are not created).
CREATE OR REPLACE FUNCTION srql_summary_capture_relation(rel regclass, is_partition boolean) RETURNS void
LANGUAGE plpgsql SET citus.enable_unsafe_triggers = on AS $$
BEGIN
    IF is_partition THEN
        RETURN;
    END IF;
    EXECUTE format('CREATE TRIGGER srql_summary_inserted AFTER INSERT OR UPDATE OR DELETE ON %s
                    FOR EACH ROW EXECUTE FUNCTION srql_summary_log_row()', rel);
END $$;

ALTER FUNCTION srql_summary_set_capture(boolean) SET citus.enable_unsafe_triggers = on;
ALTER FUNCTION srql_ensure_partition(timestamptz) SET citus.enable_unsafe_triggers = on;

-- Ownership changes of distributed tables and functions go to every node over one
-- connection each; setup hands everything to the owner in one call.
ALTER FUNCTION srql_adopt_objects() SET citus.multi_shard_modify_mode = 'sequential';
