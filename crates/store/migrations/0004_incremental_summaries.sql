-- Incremental summary maintenance (`summary_mode` = 'incremental'): `otel_trace_summaries`
-- becomes a table kept exact by recomputing only the traces whose spans changed, so each
-- round costs what arrived since the last one, not the whole window.
--
-- Pieces, all driven from SQL so every scheduler (pg_cron, the service, `srql refresh`)
-- goes through `srql_refresh_summaries` as before:
--   srql_summary_log            arrival-ordered record of touched trace_ids
--   srql_summary_extent         where each trace's spans lie in time, so a recompute
--                               probes only the day partitions that can hold them
--   srql_summary_log_*()        statement-level triggers that feed it (every writer)
--   srql_summary_drain_batch()  claim + recompute + delete-from-log, one transaction
--   srql_summary_apply()        the recompute itself; created by `srql migrate` from the
--                               shared aggregate SQL (srql_plan::summary_sql), not here,
--                               so the definition of a row exists exactly once
--   srql_summary_drain()        batches, pruning, bookkeeping in srql_refresh_runs

-- One row per (writing statement, trace). Not deduplicated on insert: a unique key would
-- make concurrent writers of one trace wait on each other; the drain deduplicates.
-- A queue: rows are deleted within seconds, so autovacuum must keep up with the churn
-- instead of waiting for 20% of a table that is usually near-empty.
CREATE TABLE srql_summary_log (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trace_id  text NOT NULL,
    -- Span times written by the statement (NULL for deletes and truncation).
    first_ts  timestamptz,
    last_ts   timestamptz,
    -- The writing transaction's start, which is also `otel_traces.created_at`'s default.
    -- Never later than the commit that made the spans visible, which is what lets the
    -- drain state a safe `snapshot_at` (see srql_summary_drain).
    logged_at timestamptz NOT NULL DEFAULT now()
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
        autovacuum_vacuum_cost_delay = 0);
-- min(logged_at) bounds the summaries' freshness at the end of every drain.
CREATE INDEX srql_summary_log_logged_at_idx ON srql_summary_log (logged_at);

-- Invariant while capture is on: every visible span of a trace has its timestamp inside
-- the trace's extent, or is covered by a log entry not yet drained. Without it a
-- recompute would probe the trace_id index of every day partition (a cost that follows
-- retention, and at 10M spans mostly cache misses); with it, usually one. Extents only
-- widen (deleted spans leave them loose, which is safe) except in a resync, which
-- rebuilds them from all spans; they are written by the backfill
-- and the drain, and are dropped once no partition can hold their spans any more.
CREATE TABLE srql_summary_extent (
    trace_id text PRIMARY KEY,
    first_ts timestamptz NOT NULL,
    last_ts  timestamptz NOT NULL
);

-- What incremental runs add to the refresh log. NULL for view refreshes.
ALTER TABLE srql_refresh_runs
    -- Earliest summary timestamp the table is complete for after this run (its prune
    -- cutoff); a view's is snapshot_at - window.
    ADD COLUMN covers_from  timestamptz,
    -- Arrival (log entry) to committed summary row, over the entries this run applied.
    ADD COLUMN lag_p50_secs double precision,
    ADD COLUMN lag_p99_secs double precision,
    ADD COLUMN lag_max_secs double precision,
    -- Log entries still waiting when the run finished.
    ADD COLUMN pending      bigint;
-- Drains run every second: finding the abandoned run and expiring old ones must not scan
-- days of history each time.
CREATE INDEX srql_refresh_runs_running_idx ON srql_refresh_runs (id) WHERE outcome = 'running';
CREATE INDEX srql_refresh_runs_started_idx ON srql_refresh_runs (started_at);

CREATE FUNCTION srql_setting(setting_key text, fallback text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT s.value FROM srql_settings s WHERE s.key = setting_key), fallback)
$$;

-- Trigger functions. Statement-level with transition tables: one INSERT per writing
-- statement, so a 20 000-span COPY costs one extra statement, not 20 000 function calls
-- (row-level triggers measured +55-100% on bulk COPY; these stay within the noise of
-- repeated loads, see BENCHMARKS.md).
CREATE FUNCTION srql_summary_log_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO srql_summary_log (trace_id, first_ts, last_ts)
    SELECT trace_id, min(timestamp), max(timestamp) FROM srql_new_spans GROUP BY trace_id;
    RETURN NULL;
END $$;

CREATE FUNCTION srql_summary_log_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO srql_summary_log (trace_id) SELECT DISTINCT trace_id FROM srql_old_spans;
    RETURN NULL;
END $$;

-- An update may move a span to another trace: both traces change.
CREATE FUNCTION srql_summary_log_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO srql_summary_log (trace_id, first_ts, last_ts)
    SELECT trace_id, min(timestamp), max(timestamp) FROM srql_new_spans GROUP BY trace_id
    UNION ALL
    SELECT DISTINCT trace_id, NULL::timestamptz, NULL::timestamptz FROM srql_old_spans;
    RETURN NULL;
END $$;

-- TRUNCATE has no transition table; BEFORE it, the rows are still there to be listed.
-- Truncating the parent fires this on every partition.
CREATE FUNCTION srql_summary_log_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('INSERT INTO srql_summary_log (trace_id) SELECT DISTINCT trace_id FROM %s',
                   TG_RELID::regclass);
    RETURN NULL;
END $$;

-- Puts the capture triggers on one relation. Statement triggers fire only for the table a
-- statement names (they are not cloned to partitions like row triggers), so the parent
-- catches writes through `otel_traces` and each partition catches writes addressed to it
-- directly; a write through the parent fires only the parent's.
CREATE FUNCTION srql_summary_capture_relation(rel regclass, is_partition boolean) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TRIGGER srql_summary_inserted AFTER INSERT ON %s
                    REFERENCING NEW TABLE AS srql_new_spans
                    FOR EACH STATEMENT EXECUTE FUNCTION srql_summary_log_inserted()', rel);
    EXECUTE format('CREATE TRIGGER srql_summary_updated AFTER UPDATE ON %s
                    REFERENCING OLD TABLE AS srql_old_spans NEW TABLE AS srql_new_spans
                    FOR EACH STATEMENT EXECUTE FUNCTION srql_summary_log_updated()', rel);
    EXECUTE format('CREATE TRIGGER srql_summary_deleted AFTER DELETE ON %s
                    REFERENCING OLD TABLE AS srql_old_spans
                    FOR EACH STATEMENT EXECUTE FUNCTION srql_summary_log_deleted()', rel);
    IF is_partition THEN
        EXECUTE format('CREATE TRIGGER srql_summary_truncated BEFORE TRUNCATE ON %s
                        FOR EACH STATEMENT EXECUTE FUNCTION srql_summary_log_truncated()', rel);
    END IF;
END $$;

-- Partitions created since capture was turned on get their triggers. Cheap when there is
-- nothing to do (a catalog lookup), so the drain calls it every round.
CREATE FUNCTION srql_summary_capture_partitions() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    part regclass;
    n integer := 0;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger
                   WHERE tgrelid = 'otel_traces'::regclass AND tgname = 'srql_summary_inserted') THEN
        RETURN 0;
    END IF;
    FOR part IN
        SELECT i.inhrelid::regclass FROM pg_inherits i
        WHERE i.inhparent = 'otel_traces'::regclass
          AND NOT EXISTS (SELECT 1 FROM pg_trigger t
                          WHERE t.tgrelid = i.inhrelid AND t.tgname = 'srql_summary_inserted')
    LOOP
        PERFORM srql_summary_capture_relation(part, true);
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;

-- Turns capture on (triggers on otel_traces and every partition) or off (triggers
-- dropped, the log emptied: nobody drains it outside incremental mode). Returns the
-- number of relations changed.
CREATE FUNCTION srql_summary_set_capture(enable boolean) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    rel regclass;
    n integer := 0;
BEGIN
    IF enable THEN
        IF NOT EXISTS (SELECT 1 FROM pg_trigger
                       WHERE tgrelid = 'otel_traces'::regclass AND tgname = 'srql_summary_inserted') THEN
            PERFORM srql_summary_capture_relation('otel_traces', false);
            n := 1;
        END IF;
        RETURN n + srql_summary_capture_partitions();
    END IF;
    FOR rel IN
        SELECT DISTINCT t.tgrelid::regclass FROM pg_trigger t
        WHERE t.tgname IN ('srql_summary_inserted', 'srql_summary_updated',
                           'srql_summary_deleted', 'srql_summary_truncated')
    LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS srql_summary_inserted ON %s', rel);
        EXECUTE format('DROP TRIGGER IF EXISTS srql_summary_updated ON %s', rel);
        EXECUTE format('DROP TRIGGER IF EXISTS srql_summary_deleted ON %s', rel);
        EXECUTE format('DROP TRIGGER IF EXISTS srql_summary_truncated ON %s', rel);
        n := n + 1;
    END LOOP;
    TRUNCATE srql_summary_log, srql_summary_extent;
    RETURN n;
END $$;

-- One batch: claims up to `batch_size` log entries (oldest arrivals first), recomputes
-- their traces from all their spans, deletes the entries. The caller commits; if the
-- transaction dies anywhere in here, the entries are still in the log and the next
-- drain redoes the work.
--
-- Read committed is enough: the recompute runs after the claim, so it sees at least the
-- spans whose log entries were claimed; spans committed later have entries of their own
-- that stay in the log. Exactness also needs one drainer at a time (an older snapshot must
-- never overwrite a newer row), which srql_summary_drain's advisory lock provides. So
-- no FOR UPDATE SKIP LOCKED: locking each entry before deleting it would write every
-- claimed row twice, and a second caller outside the lock merely waits.
CREATE FUNCTION srql_summary_drain_batch(
    batch_size integer, cutoff timestamptz,
    OUT claimed integer, OUT traces integer, OUT upserted bigint, OUT deleted bigint,
    OUT arrivals timestamptz[])
LANGUAGE plpgsql AS $$
DECLARE
    ids text[];
    los timestamptz[];
    his timestamptz[];
BEGIN
    WITH c AS (
        DELETE FROM srql_summary_log
        WHERE id IN (SELECT l.id FROM srql_summary_log l ORDER BY l.id LIMIT batch_size)
        RETURNING trace_id, first_ts, last_ts, logged_at
    ),
    t AS (
        SELECT c.trace_id, min(c.first_ts) AS lo, max(c.last_ts) AS hi FROM c GROUP BY c.trace_id
    )
    SELECT (SELECT count(*)::integer FROM c),
           (SELECT coalesce(array_agg(c.logged_at), '{}') FROM c),
           coalesce(array_agg(t.trace_id), '{}'), coalesce(array_agg(t.lo), '{}'),
           coalesce(array_agg(t.hi), '{}')
    INTO claimed, arrivals, ids, los, his
    FROM t;
    traces := cardinality(ids);
    upserted := 0;
    deleted := 0;
    IF traces > 0 THEN
        SELECT a.upserted, a.deleted INTO upserted, deleted
        FROM srql_summary_apply(ids, los, his, cutoff) a;
    END IF;
END $$;

-- Deletes up to `batch_size` summary rows whose trace ended before `cutoff` (left the
-- window), oldest first, by the timestamp index.
CREATE FUNCTION srql_summary_prune(cutoff timestamptz, batch_size integer) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    DELETE FROM otel_trace_summaries
    WHERE trace_id IN (SELECT s.trace_id FROM otel_trace_summaries s
                       WHERE s.timestamp < cutoff ORDER BY s.timestamp LIMIT batch_size);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- Traces with spans in the day partitions that srql_drop_expired_partitions(retention)
-- would drop, and a summary row: they must be recomputed after the drop. The caller holds
-- the refresh lock across this and the drop, so no drain runs in between. (Same
-- partition-name rule as srql_drop_expired_partitions in 0001.)
CREATE FUNCTION srql_summary_touch_expiring(retention interval) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    p record;
    n bigint := 0;
    k bigint;
    cutoff timestamptz := now() - retention;
BEGIN
    IF to_regclass('otel_trace_summaries') IS NULL OR NOT EXISTS (
        SELECT 1 FROM pg_trigger
        WHERE tgrelid = 'otel_traces'::regclass AND tgname = 'srql_summary_inserted') THEN
        RETURN 0;
    END IF;
    FOR p IN
        SELECT c.oid::regclass AS rel,
               to_date(substring(c.relname from 'otel_traces_p(\d{8})$'), 'YYYYMMDD')::timestamp
                   AT TIME ZONE 'UTC' AS lo
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'otel_traces'::regclass
          AND c.relname ~ '^otel_traces_p\d{8}$'
    LOOP
        IF p.lo + interval '1 day' <= cutoff THEN
            EXECUTE format(
                'INSERT INTO srql_summary_log (trace_id)
                 SELECT DISTINCT x.trace_id FROM %s x
                 WHERE EXISTS (SELECT 1 FROM otel_trace_summaries s WHERE s.trace_id = x.trace_id)',
                p.rel);
            GET DIAGNOSTICS k = ROW_COUNT;
            n := n + k;
        END IF;
    END LOOP;
    RETURN n;
END $$;

-- Forgets extents of traces that can have no span left: their latest time is before the
-- lower bound of every remaining partition and of every row in the default partition.
-- Runs after partitions are dropped. A later span of such a trace starts a new extent.
CREATE FUNCTION srql_summary_prune_extents() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    floor_ts timestamptz;
    n bigint;
BEGIN
    SELECT least(
        (SELECT min(to_date(substring(c.relname from 'otel_traces_p(\d{8})$'), 'YYYYMMDD')::timestamp
                    AT TIME ZONE 'UTC')
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'otel_traces'::regclass AND c.relname ~ '^otel_traces_p\d{8}$'),
        (SELECT min(d.timestamp) FROM otel_traces_default d))
    INTO floor_ts;
    IF floor_ts IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM srql_summary_extent WHERE last_ts < floor_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- One incremental round: batches until the log is empty (as far as this session can see)
-- or `drain_max_secs` has passed, then pruning, then the run's record. With
-- resync = true (`srql refresh --full`), every trace in the window is queued first: an
-- exact rebuild in place, for writes that bypassed capture (see ARCHITECTURE.md).
--
-- snapshot_at: every span committed before it is reflected in its trace's row. It is
-- least(clock at the end, min(logged_at) still in the log): a write committed before
-- that instant is either drained (recomputed by a snapshot that saw it) or still in the
-- log, where its logged_at (<= its commit) would have pulled the minimum below it.
CREATE PROCEDURE srql_summary_drain(resync boolean DEFAULT false)
LANGUAGE plpgsql AS $$
DECLARE
    method text := CASE WHEN resync THEN 'resync' ELSE 'incremental' END;
    -- Larger batches amortise each statement's fixed cost (at 10M spans, 20 000 entries
    -- cost ~25% less per trace than 5 000): two minutes of 1k spans/s is one batch. A
    -- batch is one transaction holding its rows' locks, and its sort (~30MB) must fit
    -- srql_summary_apply's work_mem (64MB).
    batch_size integer := greatest(srql_setting('drain_batch_size', '20000')::integer, 1);
    budget interval := srql_setting('drain_max_secs', '5')::numeric * interval '1 second';
    win interval := srql_setting('summary_window_secs', '604800')::bigint * interval '1 second';
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
    IF NOT pg_try_advisory_lock(7355608, 1) THEN
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
    PERFORM pg_advisory_unlock(7355608, 1);
    -- Recent history is enough; an idle drain every second would otherwise keep 250 000
    -- rows of nothing.
    DELETE FROM srql_refresh_runs r
    WHERE r.started_at < now() - interval '3 days'
       OR (r.started_at < now() - interval '1 hour' AND r.method = 'incremental'
           AND r.outcome IN ('ok', 'skipped') AND coalesce(r.rows, 0) = 0);
END $$;

-- The one entry point, as in 0003, now dispatching on `summary_mode`: in incremental mode
-- a drain ('full' = resync), otherwise the view refresh of 0003, unchanged.
CREATE OR REPLACE PROCEDURE srql_refresh_summaries(method text DEFAULT 'concurrently')
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
    IF srql_setting('summary_mode', 'materialized_view') = 'incremental' THEN
        CALL srql_summary_drain(method = 'full');
        RETURN;
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
