-- Sealing: a day partition old enough that spans have stopped arriving for it is rewritten
-- in columnar storage (the citus_columnar extension), ordered by trace_id, and swapped in
-- for the heap partition. Spans are append-only and retention drops whole days, which is
-- all columnar asks of us (it cannot UPDATE or DELETE rows).
--
-- One day is sealed in three transactions, driven by store::sealing:
--   srql_seal_begin(part)  a columnar stage and a heap side table for late spans, and a
--                          row trigger forwarding the day's new spans into the side
--                          table (a brief lock on the partition only)
--   srql_seal_copy(part)   the day's spans, sorted, into the stage, and its indexes; in a
--                          REPEATABLE READ transaction whose snapshot is recorded
--   srql_seal_swap(part)   under a brief lock on otel_traces: spans the copy's snapshot
--                          did not see are taken from the side table, the heap partition
--                          is detached and dropped, the stage attached in its place
-- Progress is in srql_seal_progress, so a round that dies resumes where it stopped.
--
-- Optional: without the extension the functions exist but srql_sealing_available() is
-- false and nothing seals.

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'citus_columnar') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS citus_columnar;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING 'srql: citus_columnar is installed but this user may not create it; sealing stays off until a superuser runs CREATE EXTENSION citus_columnar';
        END;
    END IF;
END $$;

CREATE OR REPLACE FUNCTION srql_lock_id(lock_name text) RETURNS integer
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    CASE lock_name
        WHEN 'refresh' THEN RETURN 1;
        WHEN 'migrate' THEN RETURN 2;
        WHEN 'backfill' THEN RETURN 3;
        WHEN 'seal' THEN RETURN 4;
        ELSE RAISE EXCEPTION 'unknown srql advisory lock "%"', lock_name;
    END CASE;
END $$;

CREATE FUNCTION srql_sealing_available() RETURNS boolean
LANGUAGE sql STABLE AS $$ SELECT EXISTS (SELECT 1 FROM pg_am WHERE amname = 'columnar') $$;

-- A day being sealed. `snapshot` is set once the copy committed: the spans it saw.
CREATE TABLE srql_seal_progress (
    part        text PRIMARY KEY,
    stage       text NOT NULL,
    late        text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    snapshot    pg_snapshot,
    copied_rows bigint
);

-- Days sealed, for /healthz, /metrics and the benchmarks. Kept while the day exists.
CREATE TABLE srql_seal_log (
    part          text PRIMARY KEY,
    sealed_at     timestamptz NOT NULL DEFAULT now(),
    spans         bigint NOT NULL,
    late_spans    bigint NOT NULL,
    heap_bytes    bigint NOT NULL,
    sealed_bytes  bigint NOT NULL,
    seconds       double precision NOT NULL
);

-- The day's first instant, from a partition name (same rule as 0001 and 0004).
CREATE FUNCTION srql_partition_day(part text) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_date(substring(part from 'otel_traces_p(\d{8})$'), 'YYYYMMDD')::timestamp AT TIME ZONE 'UTC'
$$;

-- Heap day partitions that have spans, ended at least `seal_after` ago and are not yet
-- due for retention, oldest first; days already in progress come first.
CREATE FUNCTION srql_seal_due(seal_after interval, retention interval) RETURNS SETOF text
LANGUAGE sql STABLE AS $$
    SELECT c.relname::text
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    JOIN pg_am a ON a.oid = c.relam
    WHERE i.inhparent = 'otel_traces'::regclass
      AND c.relname ~ '^otel_traces_p\d{8}$'
      AND a.amname = 'heap'
      AND srql_partition_day(c.relname) + interval '1 day' <= now() - seal_after
      AND srql_partition_day(c.relname) + interval '1 day' > now() - retention
      AND c.reltuples <> 0
    ORDER BY EXISTS (SELECT 1 FROM srql_seal_progress p WHERE p.part = c.relname) DESC,
             c.relname
$$;

-- Copies a span routed to a partition being sealed into its side table. A row trigger:
-- statement triggers on a partition miss writes addressed to otel_traces.
CREATE FUNCTION srql_seal_forward() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('INSERT INTO %I SELECT ($1).*', TG_ARGV[0]) USING NEW;
    RETURN NULL;
END $$;

-- Drops what an interrupted seal of `part` left behind (the trigger goes with the
-- partition's lock, so callers bound the wait with lock_timeout).
CREATE FUNCTION srql_seal_abandon(part text) RETURNS void
LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    p srql_seal_progress;
BEGIN
    SELECT * INTO p FROM srql_seal_progress s WHERE s.part = srql_seal_abandon.part;
    IF to_regclass(part) IS NOT NULL THEN
        EXECUTE format('DROP TRIGGER IF EXISTS srql_seal_forward ON %I', part);
    END IF;
    EXECUTE format('DROP TABLE IF EXISTS %I, %I', part || '_seal', part || '_late');
    DELETE FROM srql_seal_progress s WHERE s.part = srql_seal_abandon.part;
END $$;

-- Step 1. From here on every span reaching `part` is also in `<part>_late`, with the id of
-- the transaction that wrote it. CREATE TRIGGER waits for the partition's writers, so
-- every span written without the trigger is committed before the copy's snapshot.
CREATE FUNCTION srql_seal_begin(part text) RETURNS void
LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    lo timestamptz := srql_partition_day(part);
    stage text := part || '_seal';
    late text := part || '_late';
BEGIN
    IF NOT srql_sealing_available() THEN
        RAISE EXCEPTION 'sealing needs the citus_columnar extension';
    END IF;
    PERFORM srql_seal_abandon(part);
    EXECUTE format('CREATE TABLE %I (LIKE otel_traces INCLUDING DEFAULTS)', late);
    EXECUTE format('ALTER TABLE %I ADD COLUMN srql_xid xid8 NOT NULL DEFAULT pg_current_xact_id()', late);
    -- The bounds let ATTACH PARTITION skip scanning the stage; the swap drops them.
    EXECUTE format(
        'CREATE TABLE %I (LIKE otel_traces INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
                          CONSTRAINT srql_seal_bounds CHECK (timestamp >= %L AND timestamp < %L))
         USING columnar', stage, lo, lo + interval '1 day');
    -- A trace lookup decompresses every column of each chunk group whose trace_id range
    -- may hold it, once per sealed day: with the smallest groups Citus allows (1000 rows
    -- instead of 10 000) a lookup measured ~10x faster at ~1% more space.
    EXECUTE format('ALTER TABLE %I SET (columnar.chunk_group_row_limit = 1000)', stage);
    EXECUTE format('CREATE TRIGGER srql_seal_forward AFTER INSERT ON %I
                    FOR EACH ROW EXECUTE FUNCTION srql_seal_forward(%L)', part, late);
    INSERT INTO srql_seal_progress (part, stage, late) VALUES (part, stage, late);
END $$;

-- Step 2, in a REPEATABLE READ transaction: this statement's snapshot is the copy's.
-- Sorted by trace_id: a trace's spans share a chunk group, whose trace_id min/max let a
-- lookup skip every other group of the day, and ids compress better side by side than
-- in arrival order.
CREATE FUNCTION srql_seal_copy(part text) RETURNS bigint
LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    stage text := part || '_seal';
    n bigint;
BEGIN
    IF current_setting('transaction_isolation') <> 'repeatable read' THEN
        RAISE EXCEPTION 'srql_seal_copy needs a REPEATABLE READ transaction';
    END IF;
    EXECUTE format('INSERT INTO %I SELECT * FROM %I ORDER BY trace_id, timestamp', stage, part);
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM srql_load_stage_index(stage);
    UPDATE srql_seal_progress s
    SET snapshot = pg_current_snapshot(), copied_rows = n
    WHERE s.part = srql_seal_copy.part;
    RETURN n;
END $$;

-- Step 3. The caller holds nothing yet and sets lock_timeout: the locks below are the
-- only moment readers and writers wait for sealing. Returns the late spans moved over.
CREATE FUNCTION srql_seal_swap(part text) RETURNS bigint
LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    p srql_seal_progress;
    lo timestamptz := srql_partition_day(part);
    cols text;
    late_n bigint;
    heap_bytes bigint;
    idx text;
BEGIN
    SELECT * INTO p FROM srql_seal_progress s WHERE s.part = srql_seal_swap.part;
    IF p.snapshot IS NULL THEN
        RAISE EXCEPTION 'partition % has not been copied for sealing', part;
    END IF;
    -- Parent first, as every query and insert takes them.
    LOCK TABLE ONLY otel_traces IN ACCESS EXCLUSIVE MODE;
    EXECUTE format('LOCK TABLE %I IN ACCESS EXCLUSIVE MODE', part);
    SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO cols
    FROM pg_attribute a
    WHERE a.attrelid = 'otel_traces'::regclass AND a.attnum > 0 AND NOT a.attisdropped;
    -- Every writer of the partition has finished (we hold its lock), so the side table
    -- is complete: what the copy's snapshot did not see is exactly what it lacks.
    EXECUTE format('INSERT INTO %I (%s) SELECT %s FROM %I
                    WHERE NOT pg_visible_in_snapshot(srql_xid, $1)', p.stage, cols, cols, p.late)
    USING p.snapshot;
    GET DIAGNOSTICS late_n = ROW_COUNT;
    heap_bytes := pg_total_relation_size(part);
    EXECUTE format('ALTER TABLE otel_traces DETACH PARTITION %I', part);
    EXECUTE format('DROP TABLE %I, %I', part, p.late);
    EXECUTE format('ALTER TABLE %I RENAME TO %I', p.stage, part);
    FOR idx IN
        SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = to_regclass(part) AND c.relname LIKE p.stage || '\_%'
    LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I', idx, part || substr(idx, length(p.stage) + 1));
    END LOOP;
    EXECUTE format('ALTER TABLE otel_traces ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   part, lo, lo + interval '1 day');
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT srql_seal_bounds', part);
    -- Incremental mode: the new partition needs the capture triggers the old one had.
    -- Its spans need no log entries: they were captured when they were first written.
    IF EXISTS (SELECT 1 FROM pg_trigger
               WHERE tgrelid = 'otel_traces'::regclass AND tgname = 'srql_summary_inserted') THEN
        PERFORM srql_summary_capture_relation(to_regclass(part), true);
    END IF;
    DELETE FROM srql_seal_progress s WHERE s.part = srql_seal_swap.part;
    INSERT INTO srql_seal_log (part, spans, late_spans, heap_bytes, sealed_bytes, seconds)
    VALUES (part, p.copied_rows + late_n, late_n, heap_bytes, pg_total_relation_size(part),
            extract(epoch FROM clock_timestamp() - p.started_at))
    ON CONFLICT ON CONSTRAINT srql_seal_log_pkey DO UPDATE
    SET sealed_at = EXCLUDED.sealed_at, spans = EXCLUDED.spans, late_spans = EXCLUDED.late_spans,
        heap_bytes = EXCLUDED.heap_bytes, sealed_bytes = EXCLUDED.sealed_bytes,
        seconds = EXCLUDED.seconds;
    RETURN late_n;
END $$;

SELECT srql_adopt_objects();
GRANT SELECT ON srql_seal_progress, srql_seal_log TO srql_reader;
-- /healthz asks, as the reader.
GRANT EXECUTE ON FUNCTION srql_sealing_available() TO srql_reader;
