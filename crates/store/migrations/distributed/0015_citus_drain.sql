-- The drain on Citus: each shard of the log is drained on its worker, all shards at once
-- (run_command_on_shards), by srql_summary_drain_shard, which `srql migrate` creates from
-- the shared aggregate SQL. A shard's claim, recompute and upsert are one local statement
-- over co-located shards, so the drain never moves spans between nodes and costs what
-- arrived since the last round. Same contract as 0004's: one drainer at a time (the
-- refresh lock), a run recorded in srql_refresh_runs, snapshot_at from the oldest entry
-- still waiting. Per-entry lags stay on the workers: a run records their maximum only.
CREATE OR REPLACE PROCEDURE srql_summary_drain(resync boolean DEFAULT false)
LANGUAGE plpgsql AS $$
DECLARE
    method text := CASE WHEN resync THEN 'resync' ELSE 'incremental' END;
    -- Per shard and round: every shard claims up to this many entries at once.
    batch_size integer := greatest(srql_setting('drain_batch_size')::integer, 1);
    budget interval := srql_setting('drain_max_secs')::numeric * interval '1 second';
    win interval := srql_setting('summary_window_secs')::bigint * interval '1 second';
    prune_batch constant integer := 10000;
    started timestamptz := clock_timestamp();
    run_id bigint;
    kind "char";
    cut timestamptz;
    full_shards integer;
    traces bigint := 0;
    lag_max double precision;
    shard_run record;
    parts text[];
    pruned bigint;
    failed text;
    done_at timestamptz;
    oldest timestamptz;
    waiting bigint;
BEGIN
    IF NOT pg_try_advisory_lock(srql_lock_class(), srql_lock_id('refresh')) THEN
        INSERT INTO srql_refresh_runs (method, started_at, finished_at, outcome)
        VALUES (method, clock_timestamp(), clock_timestamp(), 'skipped');
        RETURN;
    END IF;
    UPDATE srql_refresh_runs SET outcome = 'abandoned', finished_at = clock_timestamp()
    WHERE outcome = 'running';
    INSERT INTO srql_refresh_runs (method, started_at, outcome)
    VALUES (method, clock_timestamp(), 'running')
    RETURNING id INTO run_id;
    COMMIT;

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

    WHILE failed IS NULL LOOP
        BEGIN
            pruned := srql_summary_prune(cut, prune_batch);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS failed = MESSAGE_TEXT;
        END;
        COMMIT;
        EXIT WHEN pruned < prune_batch OR clock_timestamp() - started > budget;
    END LOOP;

    done_at := clock_timestamp();
    SELECT min(l.logged_at), count(*) INTO oldest, waiting FROM srql_summary_log l;
    UPDATE srql_refresh_runs
    SET finished_at = clock_timestamp(),
        outcome = CASE WHEN failed IS NULL THEN 'ok' ELSE 'failed' END,
        error = failed,
        snapshot_at = CASE WHEN failed IS NULL THEN least(done_at, oldest) END,
        covers_from = cut,
        rows = traces,
        pending = waiting,
        lag_max_secs = CASE WHEN resync THEN NULL ELSE lag_max END
    WHERE id = run_id;
    COMMIT;
    PERFORM pg_advisory_unlock(srql_lock_class(), srql_lock_id('refresh'));
    DELETE FROM srql_refresh_runs r
    WHERE r.started_at < now() - interval '3 days'
       OR (r.started_at < now() - interval '1 hour' AND r.method = 'incremental'
           AND r.outcome IN ('ok', 'skipped') AND coalesce(r.rows, 0) = 0);
END $$;
