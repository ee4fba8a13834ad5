-- A rare span attribute value (`span.attributes.http.status_code:401`, issue 13) has no
-- b-tree to start from, so the summaries walk probed most traces of the range (0.24-0.38 s
-- p50 at M). A GIN index over `attributes` with jsonb_path_ops answers the containment
-- test span_search renders for attribute equality (`attributes @> {"key": value}`), so
-- PostgreSQL can find the few matching spans first and then their traces' summaries.
-- jsonb_path_ops rather than the default jsonb_ops: it indexes key paths with their
-- values only, a smaller index that is cheaper to keep up on insert, and containment is
-- the one operator we need it for (`?` existence and LIKE stay unindexed).
--
-- citus_columnar cannot hold a GIN index, so it is a heap-day row (on_sealed = false) of
-- srql_span_indexes, under 0013's search-index switch. The list now carries each index's
-- method with its keys, so the switch function adds rows verbatim.
DROP FUNCTION srql_span_search_index_list();
CREATE FUNCTION srql_span_search_index_list()
RETURNS TABLE (index_name text, definition text)
LANGUAGE sql IMMUTABLE AS $$
    VALUES
        ('otel_traces_service_duration_idx',
         'USING btree (service_name, (greatest(coalesce(end_time_unix_nano - start_time_unix_nano, 0), 0)::float8 / 1e6))'),
        ('otel_traces_name_service_idx', 'USING btree (name, service_name)'),
        -- `span.attributes.<key>:<value>`: a rare value.
        ('otel_traces_attributes_idx', 'USING gin (attributes jsonb_path_ops)')
$$;

-- As in 0013, with the method taken from the list.
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
            VALUES (sfx, ix.definition, false);
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

-- A database with the search indexes switched on gets the new one on every heap day now;
-- one switched off stays off (the switch turns on all three together).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM srql_span_indexes WHERE suffix = 'name_service_idx') THEN
        PERFORM srql_span_search_indexes(true);
    END IF;
END $$;
