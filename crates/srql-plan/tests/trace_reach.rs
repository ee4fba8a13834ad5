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
        distributed: false,
        stored_spans: None,
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

/// A catalog of ready incremental summaries: the summary path answers.
fn incremental() -> Catalog {
    Catalog {
        summaries: srql_plan::SummaryState::Ready {
            kind: srql_plan::SummaryKind::Table,
            covers_from: now() - chrono::Duration::days(7),
            as_of: now(),
        },
        retention: Some(chrono::Duration::days(7)),
        trace_extents: true,
        distributed: false,
        stored_spans: None,
    }
}

fn plan_of(text: &str, catalog: &Catalog) -> srql_plan::Plan {
    compile(
        text,
        catalog,
        &PageRequest::default(),
        &srql_lang::Limits::default(),
        now(),
    )
    .unwrap()
}

fn summary_plan(text: &str, catalog: &Catalog) -> srql_plan::Plan {
    let plan = plan_of(text, catalog);
    assert!(
        matches!(plan.source, srql_plan::Source::Summaries(_)),
        "{text}"
    );
    plan
}

#[test]
fn span_conditions_on_summaries_ask_for_the_window_of_the_range() {
    let text = "in:otel_trace_summaries time:last_24h span.attributes.http.status_code:401";
    let ask = srql_plan::extent_query(&summary_plan(text, &incremental()))
        .expect("the window is read first");
    insta::assert_snapshot!(format!(
        "params: {}\n\n{}\n",
        serde_json::to_string(&ask.params).unwrap(),
        ask.sql
    ));

    let not_asked = |text: &str, catalog: &Catalog| {
        srql_plan::extent_query(&summary_plan(text, catalog)).is_none()
    };
    let view = Catalog {
        trace_extents: false,
        distributed: false,
        stored_spans: None,
        summaries: srql_plan::SummaryState::Ready {
            kind: srql_plan::SummaryKind::MaterializedView,
            covers_from: now() - chrono::Duration::days(7),
            as_of: now(),
        },
        ..incremental()
    };
    assert!(not_asked(text, &view), "materialized-view mode: no reach");
    assert!(
        not_asked("in:otel_trace_summaries time:last_24h", &incremental()),
        "no span conditions: nothing reads spans"
    );
}

#[test]
fn the_window_read_bounds_every_lookup_positive_and_negated() {
    let plan = summary_plan(
        "in:otel_trace_summaries time:last_24h span.name:checkout !span.status_code:2",
        &incremental(),
    );
    let unbounded = render(&plan);
    assert!(
        !unbounded
            .sql
            .contains("srql_spans.trace_id = otel_trace_summaries.trace_id AND timestamp"),
        "{}",
        unbounded.sql
    );
    let lo = now() - chrono::Duration::days(3);
    let hi = now() + chrono::Duration::minutes(5);
    let bounded = plan.with_extent(srql_plan::ExtentBounds {
        lo: Some(lo),
        hi: Some(hi),
        long_traces: Some(2),
    });
    assert_eq!(srql_plan::extent_query(&bounded), None, "asked once");
    let q = render(&bounded);
    assert_eq!(
        q.sql
            .matches("srql_spans.trace_id = otel_trace_summaries.trace_id AND timestamp >= $")
            .count(),
        2,
        "{}",
        q.sql
    );
    assert!(
        q.params.contains(&srql_plan::Param::Timestamptz(lo)),
        "{:?}",
        q.params
    );
    assert!(
        q.params.contains(&srql_plan::Param::Timestamptz(hi)),
        "{:?}",
        q.params
    );
}

#[test]
fn span_tests_are_flags_below_the_sort_and_positive_ones_name_candidates() {
    let range = "in:otel_trace_summaries time:last_24h";
    let positive = describe(
        &format!("{range} span.attributes.http.status_code:503"),
        true,
    );
    assert!(positive.contains("srql_span_candidates AS MATERIALIZED"));
    assert!(positive.contains("AS srql_span_match"));
    let negated = describe(
        &format!("{range} !span.attributes.http.status_code:503"),
        true,
    );
    assert!(
        !negated.contains("srql_span_candidates"),
        "no span of a negated condition's traces passes it: nothing to look for first"
    );
    assert!(negated.contains("NOT bool_or(srql_span_match_not_0)"));
    let like = describe(
        &format!("{range} span.attributes.http.route:%orders%"),
        true,
    );
    assert!(
        !like.contains("srql_span_candidates") && like.contains("AS srql_span_match"),
        "no index finds a LIKE's spans: the range is read once"
    );
    let root = describe(&format!("{range} root_service_name:checkout"), true);
    assert!(!root.contains("flagged"), "no span conditions, no flags");
}

#[test]
fn a_filter_on_the_services_is_a_test_on_the_spans_and_the_shown_rows_get_them() {
    let range = "in:otel_trace_summaries time:last_24h";
    let sql = describe(
        &format!("{range} service_name:checkout !service_name:%pay% span.name:GET"),
        true,
    );
    // Each on its own span group, apart from the span the `span.` conditions hold on.
    assert!(sql.contains("(service_name = $"), "{sql}");
    assert!(sql.contains("AS srql_span_apart_0"), "{sql}");
    assert!(sql.contains("bool_or(srql_span_apart_0)"), "{sql}");
    assert!(sql.contains("NOT bool_or(srql_span_apart_1)"), "{sql}");
    assert!(sql.contains("(name = $"), "{sql}");
    assert!(
        !sql.contains("service_set @>"),
        "not a filter on the rows: {sql}"
    );
    assert!(!sql.contains("unnest(service_set)"), "{sql}");
    // Nothing reads a trace's services but the page, which looks them up.
    assert!(sql.contains("NULL::text[] AS service_set"), "{sql}");
    assert!(sql.contains(") srql_page\n"), "{sql}");
}

#[test]
fn candidates_are_not_looked_for_where_the_statistics_say_the_range_is_small() {
    let sql = |stored_spans: Option<f64>| {
        let catalog = Catalog {
            trace_extents: true,
            retention: Some(chrono::Duration::days(7)),
            stored_spans,
            ..Catalog::without_summaries()
        };
        let plan = compile(
            "in:otel_trace_summaries time:last_24h span.attributes.http.status_code:200",
            &catalog,
            &PageRequest::default(),
            &srql_lang::Limits::default(),
            now(),
        )
        .unwrap();
        render(&plan).sql
    };
    // S: ~100k spans over the week, ~14k in a day: fewer than could make candidates few.
    let small = sql(Some(99_000.0));
    assert!(!small.contains("srql_span_candidates"), "{small}");
    assert!(
        small.contains("AS srql_span_match"),
        "the test itself stays"
    );
    // M, and a database whose statistics are unknown: the count decides.
    for stored in [Some(1_000_000.0), None] {
        let sql = sql(stored);
        assert!(
            sql.contains("srql_span_candidates AS MATERIALIZED"),
            "{stored:?}"
        );
    }
}

#[test]
fn on_the_fly_reads_the_window_first_and_leaves_out_long_traces_when_none_touch_it() {
    let catalog = Catalog {
        trace_extents: true,
        ..Catalog::without_summaries()
    };
    let text =
        "in:otel_trace_summaries time:last_24h span.attributes.http.status_code:503 limit:20";
    let plan = plan_of(text, &catalog);
    let window = srql_plan::extent_query(&plan).expect("the window is read first");
    assert!(window.sql.contains("count(*)"), "{}", window.sql);
    assert!(window.sql.contains("srql_summary_extent"), "{}", window.sql);

    let lo = now() - chrono::Duration::days(1) - chrono::Duration::minutes(5);
    let hi = now() + chrono::Duration::minutes(5);
    let with = |long_traces| {
        let bounded = plan.clone().with_extent(srql_plan::ExtentBounds {
            lo: Some(lo),
            hi: Some(hi),
            long_traces: Some(long_traces),
        });
        assert_eq!(srql_plan::extent_query(&bounded), None, "asked once");
        render(&bounded)
    };
    let bound = |q: &srql_plan::SqlQuery, t| {
        let i = q
            .params
            .iter()
            .position(|p| *p == srql_plan::Param::Timestamptz(t))
            .unwrap_or_else(|| panic!("{t} not bound: {:?}", q.params));
        format!("${}", i + 1)
    };

    let none = with(0);
    assert!(!none.sql.contains("srql_long_traces"), "{}", none.sql);
    assert!(!none.sql.contains("LATERAL"), "{}", none.sql);
    // The page's services are looked up in the window's days only.
    let services = &none.sql[none.sql.find("AS service_set,").expect("deferred") - 400..];
    assert!(
        services.contains(&format!("timestamp >= {}", bound(&none, lo))),
        "{}",
        none.sql
    );
    assert!(
        services.contains(&format!("timestamp <= {}", bound(&none, hi))),
        "{}",
        none.sql
    );

    let some = with(3);
    assert!(some.sql.contains("srql_long_traces"), "{}", some.sql);
    let lateral = &some.sql[some.sql.find("CROSS JOIN LATERAL").expect("long traces")..];
    assert!(
        lateral.contains(&format!(
            "timestamp <= long.last_ts AND timestamp >= {}",
            bound(&some, lo)
        )),
        "{}",
        some.sql
    );
}

#[test]
fn an_attribute_no_index_finds_walks_the_first_summaries_then_reads_the_matching_spans() {
    let window = |plan: srql_plan::Plan| {
        plan.with_extent(srql_plan::ExtentBounds {
            lo: Some(now() - chrono::Duration::days(1) - chrono::Duration::minutes(5)),
            hi: Some(now() + chrono::Duration::minutes(5)),
            long_traces: Some(0),
        })
    };
    let text = "in:otel_trace_summaries time:last_24h span.attributes.http.route:%orders% \
                !span.status_code:2 limit:20";
    let walked = render(&window(summary_plan(text, &incremental())));
    insta::assert_snapshot!(format!(
        "params: {}\n\n{}\n",
        serde_json::to_string(&walked.params).unwrap(),
        walked.sql
    ));

    // Not where an index finds a positive condition's spans, where only span columns
    // (which have statistics) are tested, nor before the window is known.
    for text in [
        "in:otel_trace_summaries time:last_24h span.attributes.http.route:%orders% \
         span.attributes.http.status_code:200",
        "in:otel_trace_summaries time:last_24h span.name:%price",
        "in:otel_trace_summaries time:last_24h !span.attributes.http.route:%orders%",
    ] {
        let sql = render(&window(summary_plan(text, &incremental()))).sql;
        assert!(!sql.contains("srql_walked"), "{text}: {sql}");
    }
    let unknown = render(&summary_plan(text, &incremental())).sql;
    assert!(!unknown.contains("srql_walked"), "{unknown}");
}
