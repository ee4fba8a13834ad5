-- The one way summaries are refreshed: the pg_cron job, the service scheduler and
-- `srql refresh` all CALL this, so locking and bookkeeping cannot drift between them.
--
-- Only one refresh runs at a time across every instance: a session-level advisory lock,
-- which PostgreSQL releases when the session ends, so a crashed refresher never leaves
-- a stale lock behind. The run is recorded as 'running' in its own committed transaction
-- first, so an in-progress refresh is visible to readers.
CREATE PROCEDURE srql_refresh_summaries(method text DEFAULT 'concurrently')
LANGUAGE plpgsql AS $$
DECLARE
    run_id bigint;
    n bigint;
    msg text;
    snap timestamptz;
    populated boolean;
BEGIN
    IF method NOT IN ('concurrently', 'full') THEN
        RAISE EXCEPTION 'unknown refresh method "%": expected concurrently or full', method;
    END IF;
    IF NOT pg_try_advisory_lock(7355608, 1) THEN
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
    PERFORM pg_advisory_unlock(7355608, 1);
    -- The log only needs to show recent history.
    DELETE FROM srql_refresh_runs WHERE started_at < now() - interval '3 days';
END $$;
