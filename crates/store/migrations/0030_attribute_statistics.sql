-- Span conditions on attributes are planned from the `attributes` column's statistics,
-- and at the default target (a 100-entry histogram, 1% steps) a value on 0.1% of spans
-- was estimated from whether one sampled entry happened to hold it: at 10M spans the
-- same rare-attribute first page was planned either from the GIN index (20-25 ms) or
-- by walking the summaries and probing each trace (450-575 ms), depending on the
-- sample of the last ANALYZE. At 1000 (0.1% steps) four ANALYZE runs in four gave the
-- GIN plan. The price is ANALYZE's: its sample follows the largest target of the table,
-- 300k rows instead of 30k a day (at 10M spans, ANALYZE of all days took 70 s against
-- 5.5 s). Heap days only: sealed days have no attribute index to plan for.
--
-- Day partitions do not inherit a column's statistics target from otel_traces, so it is
-- set where each day gets its search indexes (new days, bulk-load stages), and here on
-- the days that exist. Not on Citus, which does not propagate the setting to shards.
CREATE OR REPLACE FUNCTION srql_span_indexes_build(part text, sealed boolean) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    ix srql_span_indexes;
BEGIN
    FOR ix IN SELECT * FROM srql_span_indexes WHERE on_sealed OR NOT sealed ORDER BY suffix LOOP
        EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I %s', part || '_' || ix.suffix, part,
                       ix.definition);
    END LOOP;
    IF NOT sealed AND to_regclass('pg_dist_partition') IS NULL THEN
        EXECUTE format('ALTER TABLE %I ALTER COLUMN attributes SET STATISTICS 1000', part);
    END IF;
END $$;

DO $$
DECLARE
    p record;
BEGIN
    IF to_regclass('pg_dist_partition') IS NOT NULL THEN
        RETURN;
    END IF;
    FOR p IN
        SELECT c.relname::text AS part
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_am a ON a.oid = c.relam
        WHERE i.inhparent = 'otel_traces'::regclass AND a.amname = 'heap'
    LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN attributes SET STATISTICS 1000', p.part);
    END LOOP;
END $$;

SELECT srql_adopt_objects();
