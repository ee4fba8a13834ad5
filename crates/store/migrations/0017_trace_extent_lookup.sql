-- Where the spans of the traces `ids` can lie, so that a lookup by trace_id visits only
-- the day partitions of that range (run-time partition pruning on the two bounds) instead
-- of every day of retention. On a sealed (columnar) day a visit that finds nothing still
-- reads the day's chunk-group metadata: 15-20 ms per sealed day at M, 40+ at L.
--
-- Exact, never a guess: it leans on the invariant of srql_summary_extent (migration 0004)
-- that, while capture is on, every visible span of a trace lies inside the trace's extent
-- or inside the span times of a log entry not yet drained (a late span into a sealed day
-- is logged by the same capture triggers). The drain widens the extent and deletes the
-- entry in one transaction, and both are read here in one snapshot, so no span falls
-- between them. Whenever that cannot be relied on, the range is unbounded and the lookup
-- reads every day as before: capture off (materialized-view mode), or a trace the extent
-- and the log do not know (older than the incremental backfill, or no such trace).
--
-- STABLE and without side effects, so the service's read-only role may call it.
CREATE FUNCTION srql_trace_extent(ids text[], OUT lo timestamptz, OUT hi timestamptz)
LANGUAGE sql STABLE AS $$
    WITH known AS (
        SELECT trace_id, first_ts, last_ts FROM srql_summary_extent WHERE trace_id = ANY(ids)
        UNION ALL
        -- Entries of deletes carry no span times: they only take spans away.
        SELECT trace_id, first_ts, last_ts FROM srql_summary_log
        WHERE trace_id = ANY(ids) AND first_ts IS NOT NULL
    ),
    bounds AS (
        SELECT min(first_ts) AS lo, max(last_ts) AS hi,
               count(DISTINCT trace_id) = (SELECT count(DISTINCT i) FROM unnest(ids) AS i)
                   AS every_id_known
        FROM known
    )
    SELECT CASE WHEN exact THEN b.lo ELSE '-infinity' END,
           CASE WHEN exact THEN b.hi ELSE 'infinity' END
    FROM bounds b,
         LATERAL (SELECT b.every_id_known AND EXISTS (
                      SELECT 1 FROM pg_trigger
                      WHERE tgrelid = 'otel_traces'::regclass
                        AND tgname = 'srql_summary_inserted') AS exact) AS e
$$;

GRANT EXECUTE ON FUNCTION srql_trace_extent(text[]) TO srql_reader;
