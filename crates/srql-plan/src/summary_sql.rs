//! The definition of a trace summary row, in SQL, written once.
//!
//! The materialized view, the incremental recompute and the on-the-fly path all aggregate
//! spans with [`AGGREGATES`], so their rows cannot drift apart.

/// Select list over `otel_traces` grouped by `trace_id`; its columns are
/// [`crate::schema::SUMMARY_COLUMNS`] in order. A root span has an empty or NULL parent.
pub const AGGREGATES: &str = "\
trace_id,
    max(timestamp) AS timestamp,
    max(span_id) FILTER (WHERE coalesce(parent_span_id, '') = '') AS root_span_id,
    max(name) FILTER (WHERE coalesce(parent_span_id, '') = '') AS root_span_name,
    max(service_name) FILTER (WHERE coalesce(parent_span_id, '') = '') AS root_service_name,
    max(kind) FILTER (WHERE coalesce(parent_span_id, '') = '') AS root_span_kind,
    min(start_time_unix_nano) AS start_time_unix_nano,
    max(end_time_unix_nano) AS end_time_unix_nano,
    greatest(coalesce(max(end_time_unix_nano) - min(start_time_unix_nano), 0), 0)::float8 / 1e6 AS duration_ms,
    max(status_code) FILTER (WHERE coalesce(parent_span_id, '') = '') AS status_code,
    max(status_message) FILTER (WHERE coalesce(parent_span_id, '') = '') AS status_message,
    coalesce(array_agg(DISTINCT service_name COLLATE \"C\") FILTER (WHERE service_name IS NOT NULL), '{}') AS service_set,
    count(*) AS span_count,
    count(*) FILTER (WHERE status_code = 2) AS error_count";

/// The span columns [`AGGREGATES`] reads: what a relation of spans must carry for it.
pub const SPAN_COLUMNS: &str = "trace_id, timestamp, span_id, parent_span_id, name, \
service_name, kind, start_time_unix_nano, end_time_unix_nano, status_code, status_message";

/// `SELECT` of every summary column for the spans matching `where_clause`, read from the
/// table: what the stored summaries are built from (they need no resource column; the
/// query paths read [`crate::schema::relation::SPANS`] through [`aggregate_over`], where a
/// test may name one).
pub fn aggregate_query(where_clause: Option<&str>) -> String {
    aggregate_spans("otel_traces", where_clause)
}

/// [`aggregate_over`] the rows of `spans` (a relation of spans) matching `where_clause`.
pub fn aggregate_spans(spans: &str, where_clause: Option<&str>) -> String {
    let filter = where_clause
        .map(|w| format!("\n  WHERE {w}"))
        .unwrap_or_default();
    aggregate_over(&format!("{spans}{filter}"))
}

/// `SELECT` of every summary column over `from`: a `FROM` item (and its `WHERE`) whose
/// rows have the [`SPAN_COLUMNS`].
pub fn aggregate_over(from: &str) -> String {
    format!("SELECT {AGGREGATES}\n  FROM {from}\n  GROUP BY trace_id")
}

/// The materialized view's defining query: every trace whose latest span lies inside the
/// window, aggregated over *all* its spans, so a trace straddling the window edge gets the
/// same row as on the on-the-fly path.
pub fn materialized_view_query(window_secs: i64) -> String {
    format!(
        "{}\n  HAVING max(timestamp) >= now() - interval '{window_secs} seconds'",
        aggregate_query(None)
    )
}
