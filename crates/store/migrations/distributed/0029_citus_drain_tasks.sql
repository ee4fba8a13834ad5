-- Drain rounds as one distributed statement over cached connections, instead of
-- run_command_on_shards. That function opens a new connection per shard for every call
-- (8 shards: 8 fresh worker backends a round, each authenticating, loading Citus's
-- metadata and planning its statement over every day partition with cold caches): about
-- 0.8 CPU seconds a round whatever it drained (BENCHMARKS.md, "Distributed (Citus)").
-- A SELECT over a co-located table with one row per shard runs as one task per shard on
-- the session's cached worker connections, and each task calls the shard's drain there
-- (srql_summary_drain_task, which `srql migrate` creates from the shared aggregate SQL).

-- Functions and tables created below go to the workers over one connection per node.
SET LOCAL citus.multi_shard_modify_mode TO 'sequential';

-- One row per shard group: a trace_id value that hashes into each shard's range. Co-located
-- with the spans, so a rebalance moves a shard's anchor with its spans and its log.
CREATE TABLE srql_drain_anchors (trace_id text PRIMARY KEY);
SELECT create_distributed_table('srql_drain_anchors', 'trace_id', colocate_with => 'otel_traces');

-- Gives every log shard lacking one an anchor: the first of the values 'srql-drain-N'
-- that hashes into it. Tried in order until every shard has one: with N shards, a few
-- times N values suffice (each shard holds 1/N of the hash space); 64 N leave a shard
-- without one with probability about N e^-64. Called here, and by the drain when a round
-- ran fewer tasks than the log has shards (a shard split since).
CREATE FUNCTION srql_drain_anchors_fill() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    shards bigint := (SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'srql_summary_log'::regclass);
    added bigint;
BEGIN
    WITH have AS (
        SELECT get_shard_id_for_distribution_column('srql_summary_log', a.trace_id) AS shard
        FROM srql_drain_anchors a
    ),
    candidates AS (
        SELECT 'srql-drain-' || i AS trace_id, i,
               get_shard_id_for_distribution_column('srql_summary_log', 'srql-drain-' || i) AS shard
        FROM generate_series(1, 64 * shards) i
    )
    INSERT INTO srql_drain_anchors (trace_id)
    SELECT DISTINCT ON (c.shard) c.trace_id FROM candidates c
    WHERE c.shard NOT IN (SELECT have.shard FROM have)
    ORDER BY c.shard, c.i
    ON CONFLICT (trace_id) DO NOTHING;
    GET DIAGNOSTICS added = ROW_COUNT;
    RETURN added;
END $$;

SELECT srql_drain_anchors_fill();

-- The drain before this one kept no extents on Citus (the table stayed empty). The shard
-- drains now rely on 0004's invariant (every span of a trace inside its extent or an
-- undrained log entry), so the extents are built here from every span; spans committed
-- meanwhile have log entries of their own, which widen them. Grouped by the distribution
-- column: runs on the shards.
INSERT INTO srql_summary_extent AS x (trace_id, first_ts, last_ts)
SELECT t.trace_id, min(t.timestamp), max(t.timestamp) FROM otel_traces t
GROUP BY t.trace_id
ON CONFLICT (trace_id) DO UPDATE
SET first_ts = least(x.first_ts, EXCLUDED.first_ts), last_ts = greatest(x.last_ts, EXCLUDED.last_ts);

-- Replaced by srql_summary_drain_task (an anchor instead of a shard name).
DROP FUNCTION IF EXISTS srql_summary_drain_shard(text, timestamptz, integer);

-- Pruning the rows that left the window, per shard over the same connections. 0004's
-- prune, a DELETE of the oldest rows (ORDER BY timestamp LIMIT) through the coordinator,
-- pulled every shard's candidates to the coordinator and broadcast them back: about 40 ms
-- a drain here even with nothing to prune. Each shard keeps its own batch bound.
CREATE FUNCTION srql_summary_prune_task(anchor text, cutoff timestamptz, batch_size integer)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    sums text := shard_name('otel_trace_summaries'::regclass,
        get_shard_id_for_distribution_column('otel_trace_summaries', anchor));
    n bigint;
BEGIN
    EXECUTE format('DELETE FROM %1$s WHERE trace_id IN (
                        SELECT s.trace_id FROM %1$s s WHERE s.timestamp < $1
                        ORDER BY s.timestamp LIMIT $2)', sums)
    USING cutoff, batch_size;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- One connection per worker: a prune is usually empty, and extra connections would be
-- opened and closed for it.
-- PL/pgSQL: Citus cannot plan the query of an SQL function with its parameters.
CREATE OR REPLACE FUNCTION srql_summary_prune(cutoff timestamptz, batch_size integer) RETURNS bigint
LANGUAGE plpgsql SET citus.max_adaptive_executor_pool_size = 1 AS $$
BEGIN
    RETURN (SELECT coalesce(sum(srql_summary_prune_task(a.trace_id, cutoff, batch_size)), 0)::bigint
            FROM srql_drain_anchors a);
END $$;

-- 0019's drain, with its rounds run as one SELECT over the anchors, and a resync that
-- rebuilds the extents (as on one node) which the shard drains now bound their reads by.
CREATE OR REPLACE PROCEDURE srql_summary_drain(resync boolean DEFAULT false)
LANGUAGE plpgsql AS $$
DECLARE
    method text := CASE WHEN resync THEN 'resync' ELSE 'incremental' END;
    -- Per shard and round: every shard claims up to this many entries at once.
    batch_size integer := greatest(srql_setting('drain_batch_size')::integer, 1);
    budget interval := srql_setting('drain_max_secs')::numeric * interval '1 second';
    win interval := srql_setting('summary_window_secs')::bigint * interval '1 second';
    started timestamptz := clock_timestamp();
    log_shards bigint;
    run_id bigint;
    kind "char";
    cut timestamptz;
    rounds integer := 0;
    refilled boolean := false;
    full_shards integer;
    traces bigint := 0;
    lag_max double precision;
    results text[];
    result text;
    parts text[];
    failed text;
BEGIN
    run_id := srql_summary_begin_run(method);
    COMMIT;
    IF run_id IS NULL THEN
        RETURN;
    END IF;

    BEGIN
        SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = to_regclass('otel_trace_summaries');
        IF kind IS DISTINCT FROM 'r' THEN
            RAISE EXCEPTION 'otel_trace_summaries is not a table: run `srql migrate --summary-mode incremental`';
        END IF;
        IF resync THEN
            -- Each statement groups by the distribution column: it runs on the shards.
            -- Spans written while capture was bypassed are in no extent: rebuilt from all.
            INSERT INTO srql_summary_extent AS x (trace_id, first_ts, last_ts)
            SELECT t.trace_id, min(t.timestamp), max(t.timestamp) FROM otel_traces t
            GROUP BY t.trace_id
            ON CONFLICT (trace_id) DO UPDATE
            SET first_ts = EXCLUDED.first_ts, last_ts = EXCLUDED.last_ts;
            INSERT INTO srql_summary_log (trace_id)
            SELECT s.trace_id FROM otel_trace_summaries s GROUP BY s.trace_id;
            INSERT INTO srql_summary_log (trace_id)
            SELECT t.trace_id FROM otel_traces t WHERE t.timestamp >= now() - win GROUP BY t.trace_id;
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS failed = MESSAGE_TEXT;
    END;
    COMMIT;

    WHILE failed IS NULL LOOP
        cut := now() - win;
        full_shards := 0;
        results := NULL;
        BEGIN
            -- A first round is usually all a drain does, and small: one connection per
            -- worker (the session's cached one) runs its shards one after another. Later
            -- rounds drain a backlog, worth the executor's extra connections per worker.
            IF rounds = 0 THEN
                PERFORM set_config('citus.max_adaptive_executor_pool_size', '1', true);
            END IF;
            SELECT array_agg(srql_summary_drain_task(a.trace_id, cut, batch_size))
            INTO results FROM srql_drain_anchors a;
            log_shards := (SELECT count(*) FROM pg_dist_shard
                           WHERE logicalrelid = 'srql_summary_log'::regclass);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS failed = MESSAGE_TEXT;
        END;
        FOREACH result IN ARRAY coalesce(results, '{}') LOOP
            -- claimed traces lag_secs
            parts := string_to_array(result, ' ');
            traces := traces + parts[2]::bigint;
            IF parts[1]::bigint >= batch_size THEN
                full_shards := full_shards + 1;
            END IF;
            IF parts[3] <> '' THEN
                lag_max := greatest(lag_max, parts[3]::double precision);
            END IF;
        END LOOP;
        COMMIT;
        rounds := rounds + 1;
        -- A shard without an anchor would never drain: give it one and go round again.
        IF failed IS NULL AND coalesce(array_length(results, 1), 0) < log_shards AND NOT refilled THEN
            PERFORM srql_drain_anchors_fill();
            COMMIT;
            refilled := true;
            CONTINUE;
        END IF;
        EXIT WHEN full_shards = 0 OR (NOT resync AND clock_timestamp() - started > budget);
    END LOOP;

    CALL srql_summary_finish_run(run_id, started, budget, cut, failed, traces, NULL, NULL,
        CASE WHEN resync THEN NULL ELSE lag_max END);
    PERFORM pg_advisory_unlock(srql_lock_class(), srql_lock_id('refresh'));
END $$;
