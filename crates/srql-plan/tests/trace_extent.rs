//! Lookups by trace_id are bounded by their traces' extents where the catalog says the
//! extents are exact, and only there. `server/tests/corpus.rs` (incremental mode) and
//! `server/tests/sealed_lookups.rs` run the bounded SQL on PostgreSQL.

use chrono::{DateTime, TimeZone, Utc};
use srql_plan::{compile, render, Catalog, PageRequest, Param, SqlQuery};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

fn sql(text: &str, trace_extents: bool) -> SqlQuery {
    let catalog = Catalog {
        trace_extents,
        distributed: false,
        stored_spans: None,
        ..Catalog::without_summaries()
    };
    let plan = compile(
        text,
        &catalog,
        &PageRequest::default(),
        &srql_lang::Limits::default(),
        now(),
    )
    .unwrap();
    render(&plan)
}

fn ids_bind(q: &SqlQuery) -> &Param {
    let at = q.sql.find("srql_trace_extent($").expect("bounded") + "srql_trace_extent($".len();
    let n: usize = q.sql[at..]
        .split(')')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap();
    &q.params[n - 1]
}

#[test]
fn a_spans_lookup_is_bounded_by_its_trace_extent() {
    let q = sql(
        "in:traces trace_id:\"4bf92f3577b34da6a3ce929d0e0e4736\"",
        true,
    );
    assert!(
        q.sql
            .contains("timestamp >= (SELECT lo FROM srql_trace_extent("),
        "{}",
        q.sql
    );
    assert!(q
        .sql
        .contains("timestamp <= (SELECT hi FROM srql_trace_extent("));
    assert_eq!(
        ids_bind(&q),
        &Param::TextArray(vec!["4bf92f3577b34da6a3ce929d0e0e4736".into()])
    );
}

#[test]
fn an_on_the_fly_lookup_of_a_list_aggregates_within_the_extents() {
    let q = sql("in:otel_trace_summaries trace_id:(aaaa,bbbb)", true);
    let with_end = q.sql.find("GROUP BY trace_id").unwrap();
    let bound = q.sql.find("srql_trace_extent(").expect("bounded");
    // Inside the aggregation over spans, never on the aggregated rows' timestamp.
    assert!(bound < with_end, "{}", q.sql);
    assert_eq!(
        ids_bind(&q),
        &Param::TextArray(vec!["aaaa".into(), "bbbb".into()])
    );
}

#[test]
fn no_bound_without_exact_extents_or_without_a_lookup() {
    for (text, extents) in [
        (
            "in:traces trace_id:\"4bf92f3577b34da6a3ce929d0e0e4736\"",
            false,
        ),
        ("in:otel_trace_summaries trace_id:(aaaa,bbbb)", false),
        ("in:traces !trace_id:aaaa", true),
        ("in:traces service.name:checkout", true),
        ("in:otel_trace_summaries time:last_24h", false),
        // Filtered: aggregated in bulk, not trace by trace.
        (
            "in:otel_trace_summaries time:last_24h service.name:checkout",
            true,
        ),
    ] {
        let q = sql(text, extents);
        assert!(!q.sql.contains("srql_trace_extent"), "{text}: {}", q.sql);
    }
}

#[test]
fn the_ordered_walk_bounds_each_trace_it_aggregates_by_that_trace_extent() {
    let q = sql("in:otel_trace_summaries time:last_24h", true);
    // Called in the FROM list, once per walked span, so that its bounds prune the
    // aggregate's day partitions at run time; the user's text is not in it.
    assert!(
        q.sql
            .contains("CROSS JOIN LATERAL srql_trace_extent(ARRAY[latest.trace_id]) extent"),
        "{}",
        q.sql
    );
    assert!(
        q.sql
            .contains("AND timestamp >= extent.lo AND timestamp <= extent.hi"),
        "{}",
        q.sql
    );
}

#[test]
fn bounds_read_before_running_are_bound_as_values_so_days_are_pruned_while_planning() {
    let catalog = Catalog {
        trace_extents: true,
        distributed: false,
        stored_spans: None,
        ..Catalog::without_summaries()
    };
    let text = "in:traces trace_id:\"4bf92f3577b34da6a3ce929d0e0e4736\"";
    let plan = compile(
        text,
        &catalog,
        &PageRequest::default(),
        &srql_lang::Limits::default(),
        now(),
    )
    .unwrap();
    let ask = srql_plan::extent_query(&plan).expect("a lookup to bound");
    assert!(ask.sql.contains("srql_trace_extent($1)"), "{}", ask.sql);
    assert_eq!(
        ask.params,
        vec![Param::TextArray(vec![
            "4bf92f3577b34da6a3ce929d0e0e4736".into()
        ])]
    );

    let lo = now() - chrono::Duration::days(3);
    let hi = now() - chrono::Duration::days(2);
    let bounded = plan.clone().with_extent(srql_plan::ExtentBounds {
        lo: Some(lo),
        hi: Some(hi),
        long_traces: None,
    });
    assert_eq!(srql_plan::extent_query(&bounded), None, "asked once");
    let q = render(&bounded);
    assert!(!q.sql.contains("srql_trace_extent"), "{}", q.sql);
    assert!(q.params.contains(&Param::Timestamptz(lo)), "{:?}", q.params);
    assert!(q.params.contains(&Param::Timestamptz(hi)), "{:?}", q.params);

    // A trace the bookkeeping does not know: no bound, every day is read.
    let open = render(&plan.with_extent(srql_plan::ExtentBounds {
        lo: None,
        hi: None,
        long_traces: None,
    }));
    assert!(!open.sql.contains("srql_trace_extent"), "{}", open.sql);
    assert!(
        !open
            .params
            .iter()
            .any(|p| matches!(p, Param::Timestamptz(_))),
        "{:?}",
        open.params
    );
}

#[test]
fn without_exact_extents_nothing_is_asked() {
    let plan = compile(
        "in:traces trace_id:\"4bf92f3577b34da6a3ce929d0e0e4736\"",
        &Catalog::without_summaries(),
        &PageRequest::default(),
        &srql_lang::Limits::default(),
        now(),
    )
    .unwrap();
    assert_eq!(srql_plan::extent_query(&plan), None);
}
