-- 0015's drain, unchanged but for its start and end: the run helpers of 0018, which the
-- single-node drain shares.
CREATE OR REPLACE PROCEDURE srql_summary_drain(resync boolean DEFAULT false)
LANGUAGE plpgsql AS $$
DECLARE
    method text := CASE WHEN resync THEN 'resync' ELSE 'incremental' END;
    -- Per shard and round: every shard claims up to this many entries at once.
    batch_size integer := greatest(srql_setting('drain_batch_size')::integer, 1);
    budget interval := srql_setting('drain_max_secs')::numeric * interval '1 second';
    win interval := srql_setting('summary_window_secs')::bigint * interval '1 second';
    started timestamptz := clock_timestamp();
    run_id bigint;
    kind "char";
    cut timestamptz;
    full_shards integer;
    traces bigint := 0;
    lag_max double precision;
    shard_run record;
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
            -- Both statements group by the distribution column: each runs on the shards.
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
        -- The command is ours: %s is the shard's name, the rest are a timestamp and an
        -- integer formatted here.
        FOR shard_run IN
            SELECT * FROM run_command_on_shards(
                'srql_summary_log',
                format('SELECT srql_summary_drain_shard(%%L, %L::timestamptz, %s)', cut, batch_size))
        LOOP
            IF NOT shard_run.success THEN
                failed := format('shard %s: %s', shard_run.shardid, shard_run.result);
                EXIT;
            END IF;
            -- claimed traces lag_secs
            parts := string_to_array(shard_run.result, ' ');
            traces := traces + parts[2]::bigint;
            IF parts[1]::bigint >= batch_size THEN
                full_shards := full_shards + 1;
            END IF;
            IF parts[3] <> '' THEN
                lag_max := greatest(lag_max, parts[3]::double precision);
            END IF;
        END LOOP;
        COMMIT;
        EXIT WHEN full_shards = 0 OR (NOT resync AND clock_timestamp() - started > budget);
    END LOOP;

    CALL srql_summary_finish_run(run_id, started, budget, cut, failed, traces, NULL, NULL,
        CASE WHEN resync THEN NULL ELSE lag_max END);
    PERFORM pg_advisory_unlock(srql_lock_class(), srql_lock_id('refresh'));
END $$;
