-- The start and the end of a drain run, shared by the single-node drain (0004, 0007)
-- and the distributed one (0015, redefined by distributed/0019), which each carried their
-- own copy: taking the refresh lock and recording the run; then pruning rows that left
-- the window, the run's outcome and freshness, and trimming old history.

-- Takes the refresh lock (held by the session until the caller releases it) and records
-- a running run, the last one left 'running' marked abandoned; or, when another session
-- drains, records a skipped run and returns NULL. The caller commits.
CREATE FUNCTION srql_summary_begin_run(method text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    run_id bigint;
BEGIN
    IF NOT pg_try_advisory_lock(srql_lock_class(), srql_lock_id('refresh')) THEN
        INSERT INTO srql_refresh_runs (method, started_at, finished_at, outcome)
        VALUES (method, clock_timestamp(), clock_timestamp(), 'skipped');
        RETURN NULL;
    END IF;
    UPDATE srql_refresh_runs SET outcome = 'abandoned', finished_at = clock_timestamp()
    WHERE outcome = 'running';
    INSERT INTO srql_refresh_runs (method, started_at, outcome)
    VALUES (method, clock_timestamp(), 'running')
    RETURNING id INTO run_id;
    RETURN run_id;
END $$;

-- After the batches: prunes summary rows older than `cut` in batches (within the run's
-- `budget` from `started`), then records the run. snapshot_at is least(now, the oldest
-- entry still in the log): see srql_summary_drain. A procedure, because each prune
-- batch commits; the caller releases the refresh lock afterwards.
CREATE PROCEDURE srql_summary_finish_run(
    run_id bigint, started timestamptz, budget interval, cut timestamptz, failed text,
    traces bigint, lag_p50 double precision, lag_p99 double precision,
    lag_max double precision)
LANGUAGE plpgsql AS $$
DECLARE
    prune_batch constant integer := 10000;
    pruned bigint;
    done_at timestamptz;
    oldest timestamptz;
    waiting bigint;
BEGIN
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
        lag_p50_secs = lag_p50,
        lag_p99_secs = lag_p99,
        lag_max_secs = lag_max
    WHERE id = run_id;
    COMMIT;
    -- Recent history is enough; an idle drain every second would otherwise keep 250 000
    -- rows of nothing.
    DELETE FROM srql_refresh_runs r
    WHERE r.started_at < now() - interval '3 days'
       OR (r.started_at < now() - interval '1 hour' AND r.method = 'incremental'
           AND r.outcome IN ('ok', 'skipped') AND coalesce(r.rows, 0) = 0);
END $$;

-- 0007's drain, unchanged but for its start and end, now the helpers above.
CREATE OR REPLACE PROCEDURE srql_summary_drain(resync boolean DEFAULT false)
LANGUAGE plpgsql AS $$
DECLARE
    method text := CASE WHEN resync THEN 'resync' ELSE 'incremental' END;
    -- Larger batches amortise each statement's fixed cost (at 10M spans, 20 000 entries
    -- cost ~25% less per trace than 5 000): two minutes of 1k spans/s is one batch. A
    -- batch is one transaction holding its rows' locks, and its sort (~30MB) must fit
    -- srql_summary_apply's work_mem (64MB).
    batch_size integer := greatest(srql_setting('drain_batch_size')::integer, 1);
    budget interval := srql_setting('drain_max_secs')::numeric * interval '1 second';
    win interval := srql_setting('summary_window_secs')::bigint * interval '1 second';
    started timestamptz := clock_timestamp();
    run_id bigint;
    kind "char";
    cut timestamptz;
    claimed integer := 0;
    n_traces integer;
    arrivals timestamptz[];
    traces bigint := 0;
    lags double precision[] := '{}';
    lag_p50 double precision;
    lag_p99 double precision;
    lag_max double precision;
    failed text;
BEGIN
    run_id := srql_summary_begin_run(method);
    COMMIT;
    IF run_id IS NULL THEN
        RETURN;
    END IF;

    -- A partition created since the last round gets its triggers. Days are created ahead
    -- of time, so this rarely waits; if it would (a writer holds the partition), next round.
    BEGIN
        PERFORM set_config('lock_timeout', '200ms', true);
        PERFORM srql_summary_capture_partitions();
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS failed = MESSAGE_TEXT;
        RAISE WARNING 'srql: capture triggers for new partitions postponed: %', failed;
        failed := NULL;
    END;
    COMMIT;

    BEGIN
        SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = to_regclass('otel_trace_summaries');
        IF kind IS DISTINCT FROM 'r' THEN
            RAISE EXCEPTION 'otel_trace_summaries is not a table: run `srql migrate --summary-mode incremental`';
        END IF;
        IF resync THEN
            -- Spans written while capture was bypassed are in no extent: rebuild them all.
            INSERT INTO srql_summary_extent AS x (trace_id, first_ts, last_ts)
            SELECT t.trace_id, min(t.timestamp), max(t.timestamp) FROM otel_traces t
            GROUP BY t.trace_id
            ON CONFLICT (trace_id) DO UPDATE
            SET first_ts = EXCLUDED.first_ts, last_ts = EXCLUDED.last_ts;
            INSERT INTO srql_summary_log (trace_id)
            SELECT s.trace_id FROM otel_trace_summaries s
            UNION
            SELECT t.trace_id FROM otel_traces t WHERE t.timestamp >= now() - win;
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS failed = MESSAGE_TEXT;
    END;
    COMMIT;

    WHILE failed IS NULL LOOP
        BEGIN
            cut := now() - win;
            SELECT b.claimed, b.traces, b.arrivals INTO claimed, n_traces, arrivals
            FROM srql_summary_drain_batch(batch_size, cut) b;
            traces := traces + n_traces;
            IF NOT resync THEN
                lags := lags || ARRAY(SELECT extract(epoch FROM clock_timestamp() - a)::double precision
                                      FROM unnest(arrivals) a);
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS failed = MESSAGE_TEXT;
        END;
        COMMIT;
        EXIT WHEN claimed < batch_size OR (NOT resync AND clock_timestamp() - started > budget);
    END LOOP;

    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x),
           percentile_cont(0.99) WITHIN GROUP (ORDER BY x), max(x)
    INTO lag_p50, lag_p99, lag_max
    FROM unnest(lags) x;
    CALL srql_summary_finish_run(run_id, started, budget, cut, failed, traces,
                                 lag_p50, lag_p99, lag_max);
    PERFORM pg_advisory_unlock(srql_lock_class(), srql_lock_id('refresh'));
END $$;
