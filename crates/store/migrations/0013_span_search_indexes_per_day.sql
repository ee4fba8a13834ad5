-- 0011's switch for the span search indexes, in the per-day world of 0012: they are rows
-- of srql_span_indexes (0012 adopted the ones 0011 declared on otel_traces), for heap days
-- only, since a sealed day answers time and service conditions faster from its few
-- columns than through an index. Switching on adds the rows and builds them on every heap
-- day (the default partition included); switching off removes the rows and drops them.
CREATE OR REPLACE FUNCTION srql_span_search_indexes(enabled boolean) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    ix record;
    p record;
    sfx text;
    changed integer := 0;
BEGIN
    FOR ix IN SELECT * FROM srql_span_search_index_list() LOOP
        sfx := regexp_replace(ix.index_name, '^otel_traces_', '');
        IF enabled AND NOT EXISTS (SELECT 1 FROM srql_span_indexes s WHERE s.suffix = sfx) THEN
            INSERT INTO srql_span_indexes (suffix, definition, on_sealed)
            VALUES (sfx, 'USING btree ' || ix.definition, false);
            changed := changed + 1;
        ELSIF NOT enabled AND EXISTS (SELECT 1 FROM srql_span_indexes s WHERE s.suffix = sfx) THEN
            DELETE FROM srql_span_indexes s WHERE s.suffix = sfx;
            FOR p IN SELECT c.relname::text AS part FROM pg_inherits i
                     JOIN pg_class c ON c.oid = i.inhrelid
                     WHERE i.inhparent = 'otel_traces'::regclass LOOP
                EXECUTE format('DROP INDEX IF EXISTS %I', p.part || '_' || sfx);
            END LOOP;
            changed := changed + 1;
        END IF;
    END LOOP;
    IF enabled AND changed > 0 THEN
        FOR p IN SELECT c.relname::text AS part, am.amname = 'columnar' AS sealed
                 FROM pg_inherits i
                 JOIN pg_class c ON c.oid = i.inhrelid
                 JOIN pg_am am ON am.oid = c.relam
                 WHERE i.inhparent = 'otel_traces'::regclass LOOP
            PERFORM srql_span_indexes_build(p.part, p.sealed);
        END LOOP;
    END IF;
    RETURN changed;
END $$;
