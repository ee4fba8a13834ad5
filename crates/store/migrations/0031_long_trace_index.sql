-- The traces whose spans lie more than the reach apart ("long", srql_plan::trace_reach,
-- REACH_SECS = 300) are looked up by every query that bounds its span reads by a
-- range's reach: the on-the-fly path's widened aggregation and span conditions on the
-- summaries of a range. Without an index that read scanned every extent (one row per
-- kept trace: ~40 ms at 1M spans, growing with retention) on every such query. Long
-- traces are few, so a partial index on them is small; its predicate is the planner's
-- test verbatim, which is what lets PostgreSQL use it. The price is on the drain: an
-- extent that moves is no longer a HOT update.
CREATE INDEX srql_summary_extent_long_idx ON srql_summary_extent (last_ts)
    WHERE last_ts - first_ts > interval '300 seconds';
