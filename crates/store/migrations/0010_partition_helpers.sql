-- Partition naming and parsing stated once. Until now the day's partition name was
-- rebuilt in 0001, in 0005 twice and in Rust, and the pattern that reads it back in 0001,
-- 0004 (twice) and 0009. The functions below are those of 0001, 0004, 0005 and 0009
-- restated on top of the helpers, with the same behaviour; a test checks that no
-- installed function names partitions on its own.

-- The first instant of the UTC day containing `ts`.
CREATE FUNCTION srql_day_start(ts timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
    SELECT date_trunc('day', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
$$;

-- The name of the partition holding the UTC day containing `ts`: otel_traces_pYYYYMMDD.
-- Rust's store::partitions::partition_name calls this.
CREATE FUNCTION srql_partition_name(ts timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'otel_traces_p' || to_char(ts AT TIME ZONE 'UTC', 'YYYYMMDD')
$$;

-- The day's first instant, from a partition name; NULL for any other name (the default
-- partition, a load stage, a sealing side table).
CREATE OR REPLACE FUNCTION srql_partition_day(part text) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_date(substring(part from '^otel_traces_p(\d{8})$'), 'YYYYMMDD')::timestamp
        AT TIME ZONE 'UTC'
$$;

-- The day partitions of otel_traces with their day.
CREATE FUNCTION srql_day_partitions()
RETURNS TABLE (rel regclass, part text, day_start timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT c.oid::regclass, c.relname::text, srql_partition_day(c.relname)
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'otel_traces'::regclass
      AND srql_partition_day(c.relname) IS NOT NULL
$$;

-- 0001's, on the helpers.
CREATE OR REPLACE FUNCTION srql_ensure_partition(day_start timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    lo timestamptz := srql_day_start(day_start);
    hi timestamptz := lo + interval '1 day';
    part text := srql_partition_name(lo);
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- Serialise creators: two sessions racing to create the same day must not both try.
    PERFORM pg_advisory_xact_lock(hashtext('srql_ensure_partition'));
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    IF EXISTS (SELECT 1 FROM otel_traces_default WHERE timestamp >= lo AND timestamp < hi) THEN
        EXECUTE format('CREATE TABLE %I (LIKE otel_traces INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
        EXECUTE format(
            'WITH moved AS (DELETE FROM otel_traces_default WHERE timestamp >= %L AND timestamp < %L RETURNING *)
             INSERT INTO %I SELECT * FROM moved', lo, hi, part);
        EXECUTE format('ALTER TABLE otel_traces ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
    ELSE
        EXECUTE format('CREATE TABLE %I PARTITION OF otel_traces FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
    END IF;
    RETURN true;
END $$;

CREATE OR REPLACE FUNCTION srql_ensure_partitions(from_ts timestamptz, to_ts timestamptz)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    d timestamptz := srql_day_start(from_ts);
    created integer := 0;
BEGIN
    WHILE d <= to_ts LOOP
        IF srql_ensure_partition(d) THEN
            created := created + 1;
        END IF;
        d := d + interval '1 day';
    END LOOP;
    RETURN created;
END $$;

CREATE OR REPLACE FUNCTION srql_drop_expired_partitions(retention interval) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    p record;
    dropped integer := 0;
    cutoff timestamptz := now() - retention;
BEGIN
    FOR p IN SELECT * FROM srql_day_partitions() LOOP
        IF p.day_start + interval '1 day' <= cutoff THEN
            EXECUTE format('DROP TABLE %I', p.part);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    DELETE FROM otel_traces_default WHERE timestamp < cutoff;
    RETURN dropped;
END $$;

-- 0004's, on the helpers.
CREATE OR REPLACE FUNCTION srql_summary_touch_expiring(retention interval) RETURNS bigint
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
    FOR p IN SELECT * FROM srql_day_partitions() LOOP
        IF p.day_start + interval '1 day' <= cutoff THEN
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

CREATE OR REPLACE FUNCTION srql_summary_prune_extents() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    floor_ts timestamptz;
    n bigint;
BEGIN
    SELECT least((SELECT min(p.day_start) FROM srql_day_partitions() p),
                 (SELECT min(d.timestamp) FROM otel_traces_default d))
    INTO floor_ts;
    IF floor_ts IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM srql_summary_extent WHERE last_ts < floor_ts;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- 0005's, on the helpers.
CREATE OR REPLACE FUNCTION srql_load_stage_create(day_start timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    lo timestamptz := srql_day_start(day_start);
    hi timestamptz := lo + interval '1 day';
    part text := srql_partition_name(lo);
    stage text := part || '_load';
    has_rows boolean := false;
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I)', part) INTO has_rows;
    END IF;
    IF has_rows THEN
        RETURN NULL;
    END IF;
    EXECUTE format('DROP TABLE IF EXISTS %I', stage);
    EXECUTE format(
        'CREATE TABLE %I (LIKE otel_traces INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
                          CONSTRAINT srql_load_bounds CHECK (timestamp >= %L AND timestamp < %L))',
        stage, lo, hi);
    RETURN stage;
END $$;

CREATE OR REPLACE FUNCTION srql_load_stage_finish(stage text, day_start timestamptz,
                                                  replace_empty boolean)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    lo timestamptz := srql_day_start(day_start);
    hi timestamptz := lo + interval '1 day';
    part text := srql_partition_name(lo);
    has_rows boolean;
    outcome text := 'attached';
    idx text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('srql_ensure_partition'));
    IF to_regclass(part) IS NOT NULL THEN
        IF replace_empty THEN
            LOCK TABLE ONLY otel_traces IN ACCESS EXCLUSIVE MODE;
            EXECUTE format('LOCK TABLE %I IN ACCESS EXCLUSIVE MODE', part);
        END IF;
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I)', part) INTO has_rows;
        IF has_rows OR NOT replace_empty THEN
            EXECUTE format('INSERT INTO %I SELECT * FROM %I', part, stage);
            EXECUTE format('DROP TABLE %I', stage);
            RETURN 'merged';
        END IF;
        EXECUTE format('DROP TABLE %I', part);
        outcome := 'replaced';
    END IF;
    EXECUTE format(
        'WITH moved AS (DELETE FROM otel_traces_default WHERE timestamp >= %L AND timestamp < %L
                        RETURNING *)
         INSERT INTO %I SELECT * FROM moved', lo, hi, stage);
    EXECUTE format('ALTER TABLE %I RENAME TO %I', stage, part);
    FOR idx IN
        SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = to_regclass(part) AND c.relname LIKE stage || '\_%'
    LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I', idx, part || substr(idx, length(stage) + 1));
    END LOOP;
    EXECUTE format('ALTER TABLE otel_traces ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   part, lo, hi);
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT srql_load_bounds', part);
    IF EXISTS (SELECT 1 FROM pg_trigger
               WHERE tgrelid = 'otel_traces'::regclass AND tgname = 'srql_summary_inserted') THEN
        EXECUTE format('INSERT INTO srql_summary_log (trace_id, first_ts, last_ts)
                        SELECT trace_id, min(timestamp), max(timestamp) FROM %I GROUP BY trace_id',
                       part);
        PERFORM srql_summary_capture_relation(to_regclass(part), true);
    END IF;
    RETURN outcome;
END $$;

-- 0009's, on the helpers.
CREATE OR REPLACE FUNCTION srql_seal_due(seal_after interval, retention interval)
RETURNS SETOF text
LANGUAGE sql STABLE AS $$
    SELECT p.part
    FROM srql_day_partitions() p
    JOIN pg_class c ON c.oid = p.rel
    JOIN pg_am a ON a.oid = c.relam
    WHERE a.amname = 'heap'
      AND p.day_start + interval '1 day' <= now() - seal_after
      AND p.day_start + interval '1 day' > now() - retention
      AND c.reltuples <> 0
    ORDER BY EXISTS (SELECT 1 FROM srql_seal_progress s WHERE s.part = p.part) DESC,
             p.part
$$;
