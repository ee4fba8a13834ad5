-- Span indexes per day partition instead of on otel_traces. An index declared on the
-- partitioned table must exist on every partition, so each sealed day carried all four,
-- together about as large as its compressed spans, although on columnar storage only the
-- lookup by trace_id pays for itself: an index scan there decompresses a whole chunk group
-- per row it fetches, so time and service ranges read the day's few columns faster than
-- through an index (measured in BENCHMARKS.md, "Columnar sealing"). The planner uses each
-- partition's own indexes either way.
--
-- Contract, for every later migration: the indexes of a span day are the rows of
-- srql_span_indexes, nowhere else. Adding one is a row plus srql_span_indexes_build on
-- the existing partitions; never CREATE INDEX on otel_traces (this migration adopts any
-- that earlier migrations declared there). Heap days, bulk-load stages and new partitions
-- get every row; sealed days the rows with on_sealed.
--
-- Sealed days are also compressed harder (zstd level 9 instead of 3): 12% smaller, and
-- sealing a day stays well under a minute at L.

CREATE TABLE srql_span_indexes (
    -- The index is named <partition>_<suffix>; stages rename theirs when they become one.
    suffix     text PRIMARY KEY CHECK (suffix ~ '^[a-z0-9_]+$' AND length(suffix) <= 35),
    -- What follows `ON <partition>` in CREATE INDEX: the method, keys, INCLUDE, WHERE.
    definition text NOT NULL,
    on_sealed  boolean NOT NULL
);

-- The indexes `srql_span_indexes` gives `part` that it lacks, by name.
CREATE FUNCTION srql_span_indexes_build(part text, sealed boolean) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    ix srql_span_indexes;
BEGIN
    FOR ix IN SELECT * FROM srql_span_indexes WHERE on_sealed OR NOT sealed ORDER BY suffix LOOP
        EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I %s', part || '_' || ix.suffix, part,
                       ix.definition);
    END LOOP;
END $$;

-- Adopts the parent's indexes. Detaching a partition detaches its indexes from the
-- parent's, so the partitions keep what they have (no rebuild) while the parent's are
-- dropped, then everything is attached again with the bounds it had.
DO $$
DECLARE
    p record;
    ix record;
BEGIN
    LOCK TABLE otel_traces IN ACCESS EXCLUSIVE MODE;
    INSERT INTO srql_span_indexes (suffix, definition, on_sealed)
    SELECT regexp_replace(c.relname, '^otel_traces_', ''),
           substring(pg_get_indexdef(c.oid) from ' ON (?:ONLY )?\S+ (USING .*)$'),
           pg_get_indexdef(c.oid) ~ ' USING btree \(trace_id\)$'
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE i.indrelid = 'otel_traces'::regclass;

    CREATE TEMP TABLE srql_adopted ON COMMIT DROP AS
    SELECT pc.relname::text AS part, pg_get_expr(pc.relpartbound, pc.oid) AS bound,
           a.amname = 'columnar' AS sealed, ic.relname::text AS index,
           regexp_replace(pic.relname, '^otel_traces_', '') AS suffix
    FROM pg_inherits pi
    JOIN pg_class pc ON pc.oid = pi.inhrelid
    JOIN pg_am a ON a.oid = pc.relam
    LEFT JOIN pg_index i ON i.indrelid = pc.oid
    LEFT JOIN pg_class ic ON ic.oid = i.indexrelid
    LEFT JOIN pg_inherits ii ON ii.inhrelid = i.indexrelid
    LEFT JOIN pg_class pic ON pic.oid = ii.inhparent
    WHERE pi.inhparent = 'otel_traces'::regclass;

    FOR p IN SELECT DISTINCT part FROM srql_adopted LOOP
        EXECUTE format('ALTER TABLE otel_traces DETACH PARTITION %I', p.part);
    END LOOP;
    FOR ix IN SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
              WHERE i.indrelid = 'otel_traces'::regclass LOOP
        EXECUTE format('DROP INDEX %I', ix.relname);
    END LOOP;
    FOR ix IN SELECT a.*, s.on_sealed FROM srql_adopted a
              JOIN srql_span_indexes s ON s.suffix = a.suffix LOOP
        IF ix.sealed AND NOT ix.on_sealed THEN
            EXECUTE format('DROP INDEX %I', ix.index);
        ELSIF ix.index <> ix.part || '_' || ix.suffix THEN
            EXECUTE format('ALTER INDEX %I RENAME TO %I', ix.index, ix.part || '_' || ix.suffix);
        END IF;
    END LOOP;
    -- The default partition last: attaching it checks it holds no row of another's range.
    FOR p IN SELECT * FROM (SELECT DISTINCT part, bound, sealed FROM srql_adopted) d
             ORDER BY bound = 'DEFAULT', part LOOP
        PERFORM srql_span_indexes_build(p.part, p.sealed);
        EXECUTE format('ALTER TABLE otel_traces ATTACH PARTITION %I %s', p.part, p.bound);
    END LOOP;
END $$;

-- As in 0010, with the day's indexes built.
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
        PERFORM srql_span_indexes_build(part, false);
        EXECUTE format('ALTER TABLE otel_traces ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
    ELSE
        EXECUTE format('CREATE TABLE %I PARTITION OF otel_traces FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
        PERFORM srql_span_indexes_build(part, false);
    END IF;
    RETURN true;
END $$;

-- As in 0005, from the one list.
CREATE OR REPLACE FUNCTION srql_load_stage_index(stage text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM srql_span_indexes_build(stage, false);
END $$;

-- As in 0009, compressed harder (see the top).
CREATE OR REPLACE FUNCTION srql_seal_begin(part text) RETURNS void
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
    -- may hold it: with the smallest groups Citus allows (1000 rows instead of 10 000) a
    -- lookup measured 5x faster for 4% more space.
    EXECUTE format('ALTER TABLE %I SET (columnar.chunk_group_row_limit = 1000,
                                        columnar.compression_level = 9)', stage);
    EXECUTE format('CREATE TRIGGER srql_seal_forward AFTER INSERT ON %I
                    FOR EACH ROW EXECUTE FUNCTION srql_seal_forward(%L)', part, late);
    INSERT INTO srql_seal_progress (part, stage, late) VALUES (part, stage, late);
END $$;

-- As in 0009, with the sealed day's indexes only.
CREATE OR REPLACE FUNCTION srql_seal_copy(part text) RETURNS bigint
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
    PERFORM srql_span_indexes_build(stage, true);
    UPDATE srql_seal_progress s
    SET snapshot = pg_current_snapshot(), copied_rows = n
    WHERE s.part = srql_seal_copy.part;
    RETURN n;
END $$;

SELECT srql_adopt_objects();
GRANT SELECT ON srql_span_indexes TO srql_reader;
