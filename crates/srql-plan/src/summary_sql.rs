//! The definition of a trace summary row, in SQL, written once.
//!
//! The materialized view, the incremental recompute and the on-the-fly path all aggregate
//! spans with [`AGGREGATES`], so their rows cannot drift apart.

use crate::schema::relation;

// The select list is assembled from literal pieces so that [`AGGREGATES`] stays one
// constant text (the incremental table's definition hash reads it) while the deferred
// form shares every other line with it.
macro_rules! aggregates_before_service_set {
    () => {
        "\
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
    "
    };
}

macro_rules! service_set_aggregate {
    () => {
        "coalesce(array_agg(DISTINCT service_name COLLATE \"C\") FILTER (WHERE service_name IS NOT NULL), '{}')"
    };
}

macro_rules! aggregates_after_service_set {
    () => {
        ",
    count(*) AS span_count,
    count(*) FILTER (WHERE status_code = 2) AS error_count"
    };
}

/// Select list over `otel_traces` grouped by `trace_id`; its columns are
/// [`crate::schema::SUMMARY_COLUMNS`] in order. A root span has an empty or NULL parent.
pub const AGGREGATES: &str = concat!(
    aggregates_before_service_set!(),
    service_set_aggregate!(),
    " AS service_set",
    aggregates_after_service_set!()
);

/// [`AGGREGATES`] with `service_set` left NULL and one more column, [`FIRST_SPAN`]: the
/// trace's earliest span time. `array_agg(DISTINCT …)` is the one aggregate PostgreSQL
/// 15 cannot compute in a hash table: it sorts every span of the range by `trace_id`
/// for it (1.4 s of a 24 h aggregation at L, against 0.55 s hashed). Where only a page
/// of the traces is shown, [`service_set_of`] computes it for those afterwards.
pub const AGGREGATES_DEFERRING_SERVICE_SET: &str = concat!(
    aggregates_before_service_set!(),
    "NULL::text[] AS service_set",
    aggregates_after_service_set!(),
    ",\n    min(timestamp) AS srql_first_span"
);

/// The extra column of [`AGGREGATES_DEFERRING_SERVICE_SET`].
pub const FIRST_SPAN: &str = "srql_first_span";

/// Whether an aggregation computes `service_set` or defers it ([`AGGREGATES_DEFERRING_SERVICE_SET`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceSet {
    Aggregated,
    Deferred,
}

/// `service_set` of the trace of `row`, a row of an aggregation that deferred it. A
/// trace's spans lie between its first and latest span times, both aggregated over all
/// of them in the same snapshot, so the lookup reads exactly those spans by `trace_id`,
/// on their days only. Correlated: one lookup per row shown, each planned with its own
/// bounds (a read of a whole page's traces at once was planned as a scan of every day
/// the page spans). `bounds`: conditions on `timestamp` that hold for every span of every
/// trace the page can show, as values, so that the days outside them are not even
/// planned.
pub fn service_set_of(row: &str, bounds: &[String]) -> String {
    let bounds: String = bounds.iter().map(|c| format!(" AND {c}")).collect();
    format!(
        "(SELECT {} FROM {} WHERE trace_id = {row}.trace_id \
         AND timestamp >= {row}.{FIRST_SPAN} AND timestamp <= {row}.timestamp{bounds})",
        service_set_aggregate!(),
        relation::SPAN_TABLE
    )
}

/// The span columns [`AGGREGATES`] reads: what a relation of spans must carry for it.
pub const SPAN_COLUMNS: &str = "trace_id, timestamp, span_id, parent_span_id, name, \
service_name, kind, start_time_unix_nano, end_time_unix_nano, status_code, status_message";

/// `SELECT` of every summary column for the spans matching `where_clause`, read from the
/// table: what the stored summaries are built from (they need no resource column; the
/// query paths read [`crate::schema::relation::SPANS`] through [`aggregate_over`], where a
/// test may name one).
pub fn aggregate_query(where_clause: Option<&str>) -> String {
    aggregate_spans(relation::SPAN_TABLE, where_clause, ServiceSet::Aggregated)
}

/// [`aggregate_over`] the rows of `spans` (a relation of spans) matching `where_clause`.
pub fn aggregate_spans(spans: &str, where_clause: Option<&str>, service_set: ServiceSet) -> String {
    let filter = where_clause
        .map(|w| format!("\n  WHERE {w}"))
        .unwrap_or_default();
    aggregate_over(&format!("{spans}{filter}"), service_set)
}

/// `SELECT` of every summary column over `from`: a `FROM` item (and its `WHERE`) whose
/// rows have the [`SPAN_COLUMNS`].
pub fn aggregate_over(from: &str, service_set: ServiceSet) -> String {
    let aggregates = match service_set {
        ServiceSet::Aggregated => AGGREGATES,
        ServiceSet::Deferred => AGGREGATES_DEFERRING_SERVICE_SET,
    };
    format!("SELECT {aggregates}\n  FROM {from}\n  GROUP BY trace_id")
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
