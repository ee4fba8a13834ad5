-- A plain REFRESH MATERIALIZED VIEW swaps in a new heap but leaves the planner's
-- statistics as they were: after the first population (the view was built and analyzed
-- empty) the planner believed it had no rows until autovacuum came round, which behind
-- a large span load took minutes. At 10M spans that turned the rare-attribute first page
-- from an index-driven semi-join into a scan of every summary in range. So a plain
-- refresh (method 'full', or the first population of a concurrently-refreshed view) is
-- followed by ANALYZE; a concurrent refresh changes rows in place and autovacuum keeps up.
CREATE OR REPLACE PROCEDURE srql_refresh_summaries(method text DEFAULT 'concurrently')
LANGUAGE plpgsql AS $$
DECLARE
    unanalyzed boolean;
BEGIN
    IF method NOT IN ('concurrently', 'full') THEN
        RAISE EXCEPTION 'unknown refresh method "%": expected concurrently or full', method;
    END IF;
    IF srql_setting('summary_mode') = 'incremental' THEN
        CALL srql_summary_drain(method = 'full');
        RETURN;
    END IF;
    CALL srql_refresh_view(method);
    -- reltuples stays at the empty build's 0 (or -1, never analyzed) until an ANALYZE.
    SELECT c.reltuples <= 0 AND c.relispopulated INTO unanalyzed
    FROM pg_class c WHERE c.oid = to_regclass('otel_trace_summaries');
    IF method = 'full' OR coalesce(unanalyzed, false) THEN
        ANALYZE otel_trace_summaries;
    END IF;
END $$;

SELECT srql_adopt_objects();
