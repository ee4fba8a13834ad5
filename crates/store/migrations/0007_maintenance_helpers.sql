-- One home for what the maintenance procedures share, and each procedure stated once
-- on top of it: 0003 and 0004 wrote the lock numbers and the settings' defaults into
-- every body, and 0004 restated 0003's view refresh whole.
--
-- The lock numbers and the defaults are defined in Rust (store::locks, store::settings);
-- these functions repeat them for SQL, and a test checks each against the Rust value.

-- First half of every advisory lock key of this service.
CREATE FUNCTION srql_lock_class() RETURNS integer
LANGUAGE sql IMMUTABLE AS $$ SELECT 7355608 $$;

-- Second half, by name. An unknown name is a programming error, not a lock nobody holds.
CREATE FUNCTION srql_lock_id(lock_name text) RETURNS integer
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    CASE lock_name
        WHEN 'refresh' THEN RETURN 1;
        WHEN 'migrate' THEN RETURN 2;
        WHEN 'backfill' THEN RETURN 3;
        ELSE RAISE EXCEPTION 'unknown srql advisory lock "%"', lock_name;
    END CASE;
END $$;

-- The value a setting has while unset; NULL for settings without one.
CREATE FUNCTION srql_setting_default(setting_key text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE setting_key
        WHEN 'summary_window_secs' THEN '604800'
        WHEN 'retention_secs' THEN '604800'
        WHEN 'refresh_interval_secs' THEN '120'
        WHEN 'summary_mode' THEN 'materialized_view'
        WHEN 'drain_interval_ms' THEN '1000'
        WHEN 'drain_batch_size' THEN '20000'
        WHEN 'drain_max_secs' THEN '5'
    END
$$;

-- A setting as stored, else its default.
CREATE FUNCTION srql_setting(setting_key text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT s.value FROM srql_settings s WHERE s.key = setting_key),
                    srql_setting_default(setting_key))
$$;

-- One incremental round: batches until the log is empty (as far as this session can see)
-- or `drain_max_secs` has passed, then pruning, then the run's record. With
-- resync = true (`srql refresh --full`), every trace in the window is queued first: an
-- exact rebuild in place, for writes that bypassed capture (see ARCHITECTURE.md).
--
-- snapshot_at: every span committed before it is reflected in its trace's row. It is
-- least(clock at the end, min(logged_at) still in the log): a write committed before
-- that instant is either drained (recomputed by a snapshot that saw it) or still in the
-- log, where its logged_at (<= its commit) would have pulled the minimum below it.
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
    prune_batch constant integer := 10000;
    started timestamptz := clock_timestamp();
    run_id bigint;
    kind "char";
    cut timestamptz;
    claimed integer := 0;
    n_traces integer;
    arrivals timestamptz[];
    traces bigint := 0;
    lags double precision[] := '{}';
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
        lag_p50_secs = (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(lags) x),
        lag_p99_secs = (SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY x) FROM unnest(lags) x),
        lag_max_secs = (SELECT max(x) FROM unnest(lags) x)
    WHERE id = run_id;
    COMMIT;
    PERFORM pg_advisory_unlock(srql_lock_class(), srql_lock_id('refresh'));
    -- Recent history is enough; an idle drain every second would otherwise keep 250 000
    -- rows of nothing.
    DELETE FROM srql_refresh_runs r
    WHERE r.started_at < now() - interval '3 days'
       OR (r.started_at < now() - interval '1 hour' AND r.method = 'incremental'
           AND r.outcome IN ('ok', 'skipped') AND coalesce(r.rows, 0) = 0);
END $$;

-- The materialized view's refresh, as 0003 stated it, now named so the entry point can
-- dispatch to it instead of restating it.
CREATE PROCEDURE srql_refresh_view(method text)
LANGUAGE plpgsql AS $$
DECLARE
    run_id bigint;
    n bigint;
    msg text;
    snap timestamptz;
    populated boolean;
BEGIN
    IF NOT pg_try_advisory_lock(srql_lock_class(), srql_lock_id('refresh')) THEN
        INSERT INTO srql_refresh_runs (method, started_at, finished_at, outcome)
        VALUES (method, clock_timestamp(), clock_timestamp(), 'skipped');
        RETURN;
    END IF;
    -- We hold the lock, so any run still marked running lost its session mid-way.
    UPDATE srql_refresh_runs SET outcome = 'abandoned', finished_at = clock_timestamp()
    WHERE outcome = 'running';
    INSERT INTO srql_refresh_runs (method, started_at, outcome)
    VALUES (method, clock_timestamp(), 'running')
    RETURNING id INTO run_id;
    COMMIT;
    BEGIN
        snap := now();
        SELECT c.relispopulated INTO populated
        FROM pg_class c WHERE c.oid = to_regclass('otel_trace_summaries');
        IF populated IS NULL THEN
            RAISE EXCEPTION 'otel_trace_summaries does not exist: run `srql migrate`';
        END IF;
        -- CONCURRENTLY needs a populated view; the first population is a plain refresh.
        IF method = 'full' OR NOT populated THEN
            REFRESH MATERIALIZED VIEW otel_trace_summaries;
        ELSE
            REFRESH MATERIALIZED VIEW CONCURRENTLY otel_trace_summaries;
        END IF;
        SELECT count(*) INTO n FROM otel_trace_summaries;
        UPDATE srql_refresh_runs
        SET finished_at = clock_timestamp(), snapshot_at = snap, outcome = 'ok', rows = n
        WHERE id = run_id;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
        UPDATE srql_refresh_runs
        SET finished_at = clock_timestamp(), outcome = 'failed', error = msg
        WHERE id = run_id;
    END;
    COMMIT;
    PERFORM pg_advisory_unlock(srql_lock_class(), srql_lock_id('refresh'));
    -- The log only needs to show recent history.
    DELETE FROM srql_refresh_runs WHERE started_at < now() - interval '3 days';
END $$;

-- The one entry point (the pg_cron job, the service scheduler and `srql refresh` all
-- CALL it): a drain in incremental mode ('full' = resync), else the view refresh.
-- Transaction control passes through nested CALLs, so both may COMMIT.
CREATE OR REPLACE PROCEDURE srql_refresh_summaries(method text DEFAULT 'concurrently')
LANGUAGE plpgsql AS $$
BEGIN
    IF method NOT IN ('concurrently', 'full') THEN
        RAISE EXCEPTION 'unknown refresh method "%": expected concurrently or full', method;
    END IF;
    IF srql_setting('summary_mode') = 'incremental' THEN
        CALL srql_summary_drain(method = 'full');
    ELSE
        CALL srql_refresh_view(method);
    END IF;
END $$;

-- Hand what this migration created to srql_owner, closed to PUBLIC, as 0006 does.
SELECT srql_adopt_objects();
