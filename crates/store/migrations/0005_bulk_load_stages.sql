-- Bulk loads build each day's partition offline. The spans are copied into a table of
-- their own that has no indexes; the three span indexes are then built in one sorted pass
-- each, and the table is attached as the day's partition, all in one transaction.
-- Inserting into the b-trees row by row took about 30% of the load's CPU. Readers see the
-- day appear whole, at commit.
--
-- The loader calls
--   srql_load_stage_create(day)         the stage table, or NULL: copy into the partition
-- and then, in one transaction:
--   TRUNCATE stage                      so that COPY may write frozen rows
--   COPY ... (FREEZE)                   once or more
--   srql_load_stage_index(stage)        the indexes, outside any shared lock
--   srql_load_stage_finish(stage, day)  the swap, under a savepoint and a lock_timeout
-- The stage is created in a transaction of its own because CREATE TABLE ... LIKE holds a
-- lock on otel_traces until commit, which would stop another loader from replacing an
-- empty partition for as long as this one's day takes.

-- The stage table for the UTC day containing day_start, or NULL when that day's partition
-- already holds spans: the loader then copies into the partition itself, since merging a
-- stage into a partition with rows writes every span twice.
CREATE FUNCTION srql_load_stage_create(day_start timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    lo timestamptz := date_trunc('day', day_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hi timestamptz := lo + interval '1 day';
    part text := 'otel_traces_p' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMMDD');
    stage text := part || '_load';
    has_rows boolean := false;
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I)', part) INTO has_rows;
    END IF;
    IF has_rows THEN
        RETURN NULL;
    END IF;
    -- Left over by a load that failed after creating it; it holds no rows anyone has
    -- been told are stored.
    EXECUTE format('DROP TABLE IF EXISTS %I', stage);
    -- With the bounds as a constraint, ATTACH PARTITION need not scan the table for rows
    -- outside them. Finishing drops it again.
    EXECUTE format(
        'CREATE TABLE %I (LIKE otel_traces INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
                          CONSTRAINT srql_load_bounds CHECK (timestamp >= %L AND timestamp < %L))',
        stage, lo, hi);
    RETURN stage;
END $$;

-- The span indexes of migration 0001, named as PostgreSQL names a partition's (with the
-- stage's name until finishing renames them). ATTACH PARTITION adopts an index that
-- matches a parent index and builds any that does not; a test checks that every
-- partition ends up with exactly the parent's indexes.
CREATE FUNCTION srql_load_stage_index(stage text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE INDEX %I ON %I (timestamp DESC)', stage || '_timestamp_idx', stage);
    EXECUTE format('CREATE INDEX %I ON %I (trace_id)', stage || '_trace_id_idx', stage);
    EXECUTE format('CREATE INDEX %I ON %I (service_name, timestamp DESC)',
                   stage || '_service_name_timestamp_idx', stage);
END $$;

-- Makes the stage the day's partition, keeping every span that arrived for the day in the
-- meantime: rows in the default partition move into it, and a partition created since
-- (by upkeep, or by another load) is replaced if still empty, else receives the stage's
-- rows. Returns 'attached', 'replaced' or 'merged'.
--
-- Replacing drops a partition, which takes an ACCESS EXCLUSIVE lock on otel_traces, and
-- attaching takes one on the default partition; both wait for running queries. The
-- loader bounds that wait with lock_timeout and retries, with replace_empty false as a
-- last resort (merging needs neither lock).
CREATE FUNCTION srql_load_stage_finish(stage text, day_start timestamptz, replace_empty boolean)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    lo timestamptz := date_trunc('day', day_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hi timestamptz := lo + interval '1 day';
    part text := 'otel_traces_p' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMMDD');
    has_rows boolean;
    outcome text := 'attached';
    idx text;
BEGIN
    -- Serialised with srql_ensure_partition: the day's partition cannot appear between
    -- the check below and the ATTACH.
    PERFORM pg_advisory_xact_lock(hashtext('srql_ensure_partition'));
    IF to_regclass(part) IS NOT NULL THEN
        IF replace_empty THEN
            -- Parent first, as every query and insert takes them, then the partition, so
            -- that no span can reach it between the check and the drop.
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
    -- Incremental mode: statement triggers are not inherited, and these rows were
    -- written before the table was a partition, so log them as the triggers would have.
    IF EXISTS (SELECT 1 FROM pg_trigger
               WHERE tgrelid = 'otel_traces'::regclass AND tgname = 'srql_summary_inserted') THEN
        EXECUTE format('INSERT INTO srql_summary_log (trace_id, first_ts, last_ts)
                        SELECT trace_id, min(timestamp), max(timestamp) FROM %I GROUP BY trace_id',
                       part);
        PERFORM srql_summary_capture_relation(to_regclass(part), true);
    END IF;
    RETURN outcome;
END $$;
