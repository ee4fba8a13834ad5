//! The on-the-fly path's widened aggregation (`trace_reach.rs`): used where the catalog
//! bounds every trace's extent, for every on-the-fly query but the ordered walk and
//! lookups by trace_id; the bulk shape elsewhere. `server/tests/on_the_fly.rs` runs it on
//! PostgreSQL against the oracle.

use chrono::{DateTime, TimeZone, Utc};
use srql_plan::{compile, render, Catalog, PageRequest};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

fn describe(text: &str, trace_extents: bool) -> String {
    let catalog = Catalog {
        trace_extents,
        ..Catalog::without_summaries()
    };
    let page = PageRequest::default();
    let plan = compile(text, &catalog, &page, &srql_lang::Limits::default(), now()).unwrap();
    let sql = render(&plan);
    format!(
        "params: {}\n\n{}\n",
        serde_json::to_string(&sql.params).unwrap(),
        sql.sql
    )
}

#[test]
fn a_filtered_range_aggregates_the_widened_range_and_looks_up_long_traces() {
    insta::assert_snapshot!(describe(
        "in:otel_trace_summaries time:last_24h root_service_name:checkout",
        true
    ));
}

#[test]
fn stats_take_the_same_shape() {
    insta::assert_snapshot!(describe(
        r#"in:otel_trace_summaries time:last_24h stats:"count() as traces by root_service_name""#,
        true
    ));
}

#[test]
fn span_conditions_take_the_same_shape() {
    insta::assert_snapshot!(describe(
        "in:otel_trace_summaries time:[2026-11-24T00:00:00Z,2026-11-25T00:00:00Z] span.attributes.http.status_code:503",
        true
    ));
}

#[test]
fn only_where_the_catalog_bounds_traces_and_the_range_has_a_start() {
    let widened = |q: &str, extents: bool| describe(q, extents).contains("srql_long_traces");
    let filtered = "in:otel_trace_summaries time:last_24h root_service_name:checkout";
    assert!(widened(filtered, true));
    assert!(!widened(filtered, false), "materialized-view mode: bulk");
    assert!(
        !widened("in:otel_trace_summaries time:last_24h", true),
        "unfiltered pages by timestamp walk"
    );
    assert!(
        !widened("in:otel_trace_summaries trace_id:abc", true),
        "a lookup by trace_id reads its traces only"
    );
}
