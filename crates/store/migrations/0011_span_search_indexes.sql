-- Search inside traces (`span.…` on summaries, issue 13): b-tree indexes on the spans
-- that turn the selective span conditions into range scans from the span side, so the
-- planner can find the few matching spans first and then their traces' summaries instead
-- of probing every trace of the range. Common values need no index: walking the summaries
-- in page order and probing each trace by trace_id fills a page after a few traces.
--
-- Written once, here, as the list below; `srql_span_search_indexes(true|false)` builds or
-- drops them on the parent, which PostgreSQL carries to every partition, to future ones,
-- to a bulk-load stage when it is attached and to a sealed (columnar) day: they are
-- b-trees, which citus_columnar can hold. A GIN index on `attributes` cannot be attached
-- to a columnar partition, so it is not in this list (see docs/srql.md).
--
-- The duration expression is srql_plan::schema::SPAN_DURATION_MS character for character,
-- or the planner will not match it.
CREATE FUNCTION srql_span_search_index_list()
RETURNS TABLE (index_name text, definition text)
LANGUAGE sql IMMUTABLE AS $$
    VALUES
        -- `span.service_name:X span.duration_ms:>N`: a slow span of one service.
        ('otel_traces_service_duration_idx',
         '(service_name, (greatest(coalesce(end_time_unix_nano - start_time_unix_nano, 0), 0)::float8 / 1e6))'),
        -- `span.name:X`, with or without `span.service_name:`: an operation, root or not.
        ('otel_traces_name_service_idx', '(name, service_name)')
$$;

-- Builds (true) or drops (false) every index of the list on otel_traces; idempotent.
-- Building locks span inserts out for as long as it takes (seconds per million spans).
CREATE FUNCTION srql_span_search_indexes(enabled boolean) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    ix record;
    changed integer := 0;
BEGIN
    FOR ix IN SELECT * FROM srql_span_search_index_list() LOOP
        IF enabled AND to_regclass(ix.index_name) IS NULL THEN
            EXECUTE format('CREATE INDEX %I ON otel_traces %s', ix.index_name, ix.definition);
            changed := changed + 1;
        ELSIF NOT enabled AND to_regclass(ix.index_name) IS NOT NULL THEN
            EXECUTE format('DROP INDEX %I', ix.index_name);
            changed := changed + 1;
        END IF;
    END LOOP;
    RETURN changed;
END $$;

SELECT srql_span_search_indexes(true);
