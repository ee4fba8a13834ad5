//! Keyset SQL from cursors, and the limit rules.

use chrono::{TimeZone, Utc};
use serde_json::json;
use srql_plan::{compile, Catalog, Direction, Output, PageRequest, Plan};

fn plan(
    query: &str,
    limit: Option<i64>,
    cursor: Option<&str>,
    direction: Option<Direction>,
) -> Result<Plan, String> {
    let page = PageRequest {
        limit,
        cursor,
        direction,
        ..Default::default()
    };
    let now = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
    compile(
        query,
        &Catalog::without_summaries(),
        &page,
        &srql_lang::Limits::default(),
        now,
    )
    .map_err(|e| e.to_string())
}

fn cursor_for(query: &str, values: serde_json::Value) -> String {
    cursor_towards(query, Direction::Next, values)
}

fn cursor_towards(query: &str, direction: Direction, values: serde_json::Value) -> String {
    let p = plan(query, None, None, None).unwrap();
    let Output::Rows { page, .. } = p.output else {
        panic!("rows")
    };
    page.cursor(direction, values.as_array().unwrap().clone())
}

fn tail(p: &Plan) -> String {
    let rendered = srql_plan::render(p);
    let sql = &rendered.sql;
    let at = sql.rfind("\nFROM").unwrap();
    format!(
        "{}\nparams: {}",
        &sql[at + 1..],
        serde_json::to_string(&rendered.params).unwrap()
    )
}

#[test]
fn same_direction_keys_use_one_row_comparison() {
    let q = "in:traces time:last_1h";
    let key = json!(["2026-11-25T11:30:00.000001Z", "t1", "s1"]);
    let next = cursor_towards(q, Direction::Next, key.clone());
    let prev = cursor_towards(q, Direction::Prev, key);
    insta::assert_snapshot!(tail(&plan(q, Some(10), Some(&next), None).unwrap()));
    insta::assert_snapshot!(tail(&plan(q, Some(10), Some(&prev), None).unwrap()));
}

#[test]
fn mixed_directions_expand_to_nested_comparisons() {
    let q = "in:otel_trace_summaries sort:error_count:desc,duration_ms:asc";
    let c = cursor_for(q, json!([2, 12.5, "abc"]));
    insta::assert_snapshot!(tail(&plan(q, None, Some(&c), None).unwrap()));
}

#[test]
fn limits_default_clamp_and_body_wins() {
    let limit = |q: &str, body: Option<i64>| plan(q, body, None, None).map(|p| p.limit());
    assert_eq!(limit("in:traces", None), Ok(100));
    assert_eq!(limit("in:traces limit:7", None), Ok(7));
    assert_eq!(
        limit("in:traces limit:7", Some(9)),
        Ok(9),
        "the body's limit wins"
    );
    assert_eq!(
        limit("in:traces limit:5000", None),
        Ok(500),
        "clamped to the maximum"
    );
    assert!(limit("in:traces", Some(0))
        .unwrap_err()
        .contains("positive"));
    assert_eq!(limit("in:traces limit:0", None), Ok(1), "upstream: one row");
    assert_eq!(
        limit("in:otel_trace_summaries stats:count() as n limit:7", None),
        Ok(7),
        "aggregates report the limit too"
    );
    assert_eq!(
        limit("in:traces rollup_stats:summary", None),
        Ok(100),
        "rollups report the default"
    );
}

#[test]
fn one_traces_spans_may_come_in_a_wider_page_than_other_queries() {
    let limit = |q: &str, body: Option<i64>| plan(q, body, None, None).map(|p| p.limit());
    let id = "0af7651916cd43dd8448eb211c80319c";
    assert_eq!(
        limit(&format!("in:traces trace_id:{id}"), Some(2_000)),
        Ok(2_000),
        "one trace's spans: up to PageLimits::one_trace"
    );
    assert_eq!(
        limit(&format!("in:traces trace_id:{id} limit:100000"), None),
        Ok(5_000),
        "and no further"
    );
    assert_eq!(
        limit(&format!("in:traces trace_id:{id}"), None),
        Ok(100),
        "the default is unchanged"
    );
    for q in [
        format!("in:traces trace_id:({id},{id}1)"),
        format!("in:traces !trace_id:{id}"),
        format!("in:otel_trace_summaries trace_id:{id}"),
        format!("in:traces trace_id:{id} stats:count() as n"),
        "in:traces service_name:checkout".to_string(),
    ] {
        assert_eq!(limit(&q, Some(2_000)), Ok(500), "{q}: the general maximum");
    }
}

#[test]
fn a_cursor_carries_its_direction() {
    let q = "in:traces time:last_1h";
    let key = json!(["2026-11-25T11:30:00.000001Z", "t1", "s1"]);
    let prev = cursor_towards(q, Direction::Prev, key.clone());
    let next = cursor_towards(q, Direction::Next, key);
    let direction = |p: Plan| match p.output {
        Output::Rows { page, .. } => page.direction,
        Output::Aggregate { .. } => panic!("rows"),
    };
    assert_eq!(
        direction(plan(q, None, Some(&prev), None).unwrap()),
        Direction::Prev
    );
    assert_eq!(
        direction(plan(q, None, Some(&next), None).unwrap()),
        Direction::Next
    );
    assert_eq!(
        direction(plan(q, None, Some(&prev), Some(Direction::Prev)).unwrap()),
        Direction::Prev,
        "an agreeing direction is fine"
    );
    let err = plan(q, None, Some(&prev), Some(Direction::Next)).unwrap_err();
    assert!(err.contains("contradicts the cursor"), "{err}");
    // A cursor made before cursors carried a direction: {"s":...,"k":[...]}.
    let old = base64_url(
        r#"{"s":"timestamp:desc,trace_id:desc,span_id:desc","k":["2026-11-25T11:30:00Z","t","s"]}"#,
    );
    let err = plan(q, None, Some(&old), None).unwrap_err();
    assert!(err.contains("older version"), "{err}");
}

fn base64_url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[test]
fn tampered_cursors_are_rejected() {
    let q = "in:otel_trace_summaries";
    let good = cursor_for(q, json!(["2026-11-25T11:30:00Z", "abc"]));
    for bad in [
        "x".to_string(),
        good[..good.len() - 3].to_string(),
        cursor_for(q, json!(["not a time", "abc"])),
        cursor_for(q, json!(["2026-11-25T11:30:00Z"])),
        // PostgreSQL refuses NUL in text binds: caught here as a bad cursor, not a 500.
        cursor_for(q, json!(["2026-11-25T11:30:00Z", "ab\0c"])),
        "A".repeat(5000),
    ] {
        let err = plan(q, None, Some(&bad), None).unwrap_err();
        assert!(err.contains("cursor"), "{err}");
    }
}
