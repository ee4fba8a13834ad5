//! The on-the-fly path's ordered walk (unfiltered pages by `timestamp`, which aggregate
//! only the traces they show) against the oracle, on the traces that could fool it: spans
//! days apart, a span after the range's end, one span stored twice as a trace's latest,
//! traces whose latest spans tie; paged by cursor in both directions. And the widened
//! aggregation (filters, other sorts, stats, span conditions) against the same oracle,
//! with the summary path's span lookups, bounded by the same reach.

mod support;

use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use store::summaries::{Maintenance, SummaryConfig, SummaryMode};
use store::testing::TestDb;
use support::Summary;
use workload::Span;

fn span(trace: &str, id: &str, parent: &str, at: DateTime<Utc>) -> Span {
    let start = at.timestamp_nanos_opt().unwrap_or(0);
    let mut s = support::edge_traces(at).remove(0);
    s.timestamp = at;
    s.trace_id = format!("walk{trace:0>28}");
    s.span_id = id.into();
    s.parent_span_id = parent.into();
    s.name = format!("op {id}");
    std::sync::Arc::make_mut(&mut s.resource).service_name = Some(format!("svc-{id}"));
    s.start_time_unix_nano = start;
    s.end_time_unix_nano = start + 2_000_000;
    s
}

/// `end` is the end of the queried range.
fn tricky_traces(end: DateTime<Utc>) -> Vec<Span> {
    let hour = Duration::hours(1);
    let tie = end - hour * 5;
    let mut spans = vec![
        // Root three days before the range, latest span inside it.
        span("old_root", "r", "", end - Duration::days(3)),
        span("old_root", "c", "r", end - hour * 2),
        // Latest span after the range's end: not in the range, though spans are.
        span("late_end", "r", "", end - hour * 3),
        span("late_end", "c", "r", end + hour),
        // Two traces whose latest spans have the same time.
        span("tie_a", "r", "", tie),
        span("tie_b", "r", "", tie - hour),
        span("tie_b", "c", "r", tie),
        // Two spans of one trace at the same latest time.
        span("same_ts", "r", "", tie),
        span("same_ts", "c", "r", tie),
    ];
    // One span stored twice, as its trace's latest.
    let dup = span("dup", "c", "r", end - hour * 4);
    spans.extend([span("dup", "r", "", end - hour * 6), dup.clone(), dup]);
    // The same more than a day back, so in a day that is sealed (columnar, which has no
    // ctid to tell the copies apart) when SRQL_TEST_SEAL=1, tied with another trace.
    let old_dup = span("old_dup", "c", "r", end - hour * 30);
    spans.extend([
        span("old_dup", "r", "", end - hour * 31),
        old_dup.clone(),
        old_dup,
        span("old_tie", "r", "", end - hour * 30),
    ]);
    spans
}

async fn oracle(db: &TestDb, from: DateTime<Utc>, to: DateTime<Utc>, asc: bool) -> Vec<Value> {
    let mut rows: Vec<Summary> = support::summarize(&support::raw_spans(db).await)
        .into_iter()
        .filter(|s| s.timestamp >= from && s.timestamp <= to)
        .collect();
    rows.sort_by(|a, b| {
        let order = a
            .timestamp
            .cmp(&b.timestamp)
            .then_with(|| a.trace_id.cmp(&b.trace_id));
        if asc {
            order
        } else {
            order.reverse()
        }
    });
    rows.iter().map(Summary::to_json).collect()
}

#[tokio::test]
async fn ordered_pages_match_the_oracle_on_traces_made_to_fool_the_walk() {
    let db = TestDb::migrated().await;
    let now = Utc::now();
    let client = db.client().await;
    store::partitions::ensure(&client, now - Duration::days(4), now + Duration::days(1))
        .await
        .expect("partitions");
    let (from, to) = (now - Duration::days(2), now - Duration::minutes(30));
    support::insert(&db, &tricky_traces(to)).await;
    support::seed(&db, 3_000, 2, 7).await;
    assert_pages_match_the_oracle(&db, from, to).await;
}

/// Every page of the walk, forwards and backwards, in both orders, equals the oracle's
/// rows for the range.
async fn assert_pages_match_the_oracle(db: &TestDb, from: DateTime<Utc>, to: DateTime<Utc>) {
    let app = support::app(db, None);
    let range = format!("time:[{},{}]", support::ts(from), support::ts(to));
    for (sort, asc) in [("timestamp:desc", false), ("timestamp:asc", true)] {
        let q = format!("in:otel_trace_summaries {range} sort:{sort}");
        let want = oracle(db, from, to, asc).await;
        assert!(want.len() > 20, "the range holds too few traces");
        for id in [
            "old_root", "tie_a", "tie_b", "same_ts", "dup", "old_dup", "old_tie",
        ] {
            let id = format!("walk{id:0>28}");
            let n = want.iter().filter(|r| r["trace_id"] == json!(id)).count();
            assert_eq!(n, 1, "{id} in the range once");
        }

        let first = support::query(&app, json!({ "query": q, "source": "on_the_fly" })).await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.body);
        assert_eq!(first.source(), "on_the_fly");

        // Small pages, so that the ties and the duplicate fall on page edges.
        let pages = json!({ "query": q, "source": "on_the_fly", "limit": 3 });
        let got = support::all_pages(&app, pages).await;
        assert_eq!(got, want, "{q}, paged forwards");

        // And back from the last page.
        let mut body = json!({ "query": q, "source": "on_the_fly", "limit": 3 });
        let mut last = support::query(&app, body.clone()).await;
        while let Some(c) = last.body["pagination"]["next_cursor"].as_str() {
            body["cursor"] = json!(c);
            last = support::query(&app, body.clone()).await;
        }
        let mut back: Vec<Value> = last.results().clone();
        let mut prev = last.body["pagination"]["prev_cursor"]
            .as_str()
            .map(str::to_string);
        while let Some(c) = prev {
            let r = support::query(
                &app,
                json!({ "query": q, "source": "on_the_fly", "limit": 3, "cursor": c, "direction": "prev" }),
            )
            .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            let mut rows = r.results().clone();
            rows.extend(back);
            back = rows;
            prev = r.body["pagination"]["prev_cursor"]
                .as_str()
                .map(str::to_string);
        }
        assert_eq!(back, want, "{q}, paged backwards");
    }
}

#[tokio::test]
async fn a_walk_bounded_by_extents_counts_a_late_span_in_a_sealed_day_not_yet_drained() {
    let db = TestDb::migrated().await;
    let now = Utc::now();
    let mut client = db.client().await;
    store::partitions::ensure(&client, now - Duration::days(4), now + Duration::days(1))
        .await
        .expect("partitions");
    let (from, to) = (now - Duration::days(2), now - Duration::minutes(30));
    let mut spans = tricky_traces(to);
    // Its extent: these two hours, well inside the range.
    spans.extend([
        span("late_sealed", "r", "", to - Duration::hours(3)),
        span("late_sealed", "c", "r", to - Duration::hours(2)),
    ]);
    support::insert(&db, &spans).await;
    support::seed(&db, 3_000, 2, 7).await;
    // Incremental mode: the backfill gives each trace its extent, and the catalog then
    // bounds each walked trace's aggregate by it.
    switch_to_incremental_and_seal(&db, &mut client).await;
    let catalog = store::summaries::catalog(&client).await.expect("catalog");
    assert!(catalog.trace_extents, "the walk is bounded by the extents");
    // A span arriving late into a sealed day outside its trace's extent: only the log
    // entry, not drained here, tells the bound about it, and it must still be counted.
    let late = span("late_sealed", "late", "r", now - Duration::hours(40));
    support::insert(&db, &[late]).await;
    let waiting: i64 = client
        .query_one("SELECT count(*) FROM srql_summary_log", &[])
        .await
        .expect("log")
        .get(0);
    assert!(waiting > 0, "the late span's entry is not drained yet");
    let want = oracle(&db, from, to, false).await;
    let late_sealed = want
        .iter()
        .find(|r| r["trace_id"] == json!(format!("walk{:0>28}", "late_sealed")))
        .expect("late_sealed in the range");
    assert_eq!(late_sealed["span_count"], json!(3), "{late_sealed}");
    assert_pages_match_the_oracle(&db, from, to).await;
}

/// Every row of `query` on the on-the-fly path, all pages, by trace_id.
/// Incremental mode (its backfill gives each trace its extent), then every ended day
/// sealed unless the whole run seals them already.
async fn switch_to_incremental_and_seal(db: &TestDb, client: &mut tokio_postgres::Client) {
    switch_to_incremental(client).await;
    if !store::testing::sealing_requested() {
        assert!(
            db.seal_ended_days().await > 0,
            "the spans reach back past midnight"
        );
    }
}

/// The summaries in incremental mode, whose extents bound the widened aggregation.
async fn switch_to_incremental(client: &mut tokio_postgres::Client) {
    store::summaries::ensure(
        client,
        &SummaryConfig {
            window: Duration::days(7),
            retention: Duration::days(7),
            refresh_interval: Duration::minutes(2),
        },
        &Maintenance {
            mode: SummaryMode::Incremental,
            drain_interval: Duration::seconds(1),
        },
        &mut |_| {},
    )
    .await
    .expect("incremental mode");
}

async fn on_the_fly_rows(app: &axum::Router, query: &str) -> Vec<Value> {
    let first = support::query(app, json!({ "query": query, "source": "on_the_fly" })).await;
    assert_eq!(first.status, StatusCode::OK, "{query}: {}", first.body);
    assert_eq!(first.source(), "on_the_fly", "{query}");
    let mut rows = support::all_pages(
        app,
        json!({ "query": query, "source": "on_the_fly", "limit": 7 }),
    )
    .await;
    rows.sort_by(|a, b| a["trace_id"].as_str().cmp(&b["trace_id"].as_str()));
    rows
}

/// The widened aggregation (filters, other sorts, stats, span conditions on the
/// on-the-fly path where the extents are exact) against the oracle: traces whose spans lie
/// days apart (by their extent, or only by a late span not drained yet, in a sealed day
/// with SRQL_TEST_SEAL=1), and short traces straddling the range's edges, whose spans
/// just outside it must count (start) or exclude the trace (end).
#[tokio::test]
async fn the_widened_aggregation_matches_the_oracle_with_long_traces_and_late_spans() {
    let db = TestDb::migrated().await;
    let now = Utc::now();
    let mut client = db.client().await;
    store::partitions::ensure(&client, now - Duration::days(4), now + Duration::days(1))
        .await
        .expect("partitions");
    let (from, to) = (now - Duration::days(2), now - Duration::minutes(30));
    let minute = Duration::minutes(1);
    let mut spans = tricky_traces(to);
    spans.extend([
        // Short by its extent; a late span before the range makes it long.
        span("late_short", "r", "", to - Duration::hours(3)),
        span("late_short", "c", "r", to - Duration::hours(3) + minute),
        // Latest span just inside the start, root just before it.
        span("near_start", "r", "", from - minute * 2),
        span("near_start", "c", "r", from + minute),
        // Spans inside the range, latest span just after its end.
        span("near_end", "r", "", to - minute),
        span("near_end", "c", "r", to + minute * 2),
        // Long by its extent, with the only span of its name days before the range.
        span("ancient", "anc", "", to - Duration::days(3)),
        span("ancient", "c", "anc", to - Duration::hours(1)),
        // Short, hours before any long trace begins.
        span(
            "quiet_a",
            "r",
            "",
            to - Duration::days(3) - Duration::hours(6),
        ),
        span(
            "quiet_a",
            "c",
            "r",
            to - Duration::days(3) - Duration::hours(6) + minute,
        ),
        span(
            "quiet_b",
            "r",
            "",
            to - Duration::days(3) - Duration::hours(5),
        ),
    ]);
    support::insert(&db, &spans).await;
    support::seed(&db, 3_000, 2, 7).await;
    switch_to_incremental_and_seal(&db, &mut client).await;
    let catalog = store::summaries::catalog(&client).await.expect("catalog");
    assert!(catalog.trace_extents, "the extents are exact");
    support::insert(
        &db,
        &[span("late_short", "late", "r", from - Duration::hours(2))],
    )
    .await;

    let raw = support::raw_spans(&db).await;
    let mut oracle: Vec<Summary> = support::summarize(&raw)
        .into_iter()
        .filter(|s| s.timestamp >= from && s.timestamp <= to)
        .collect();
    oracle.sort_by(|a, b| a.trace_id.cmp(&b.trace_id));
    let id = |name: &str| format!("walk{name:0>28}");
    let find = |name: &str| oracle.iter().find(|s| s.trace_id == id(name));
    assert_eq!(find("late_short").map(|s| s.span_count), Some(3));
    assert_eq!(find("near_start").map(|s| s.span_count), Some(2));
    assert!(
        find("near_end").is_none(),
        "its latest span is after the range"
    );
    let with_late_span: std::collections::BTreeSet<&str> = raw
        .iter()
        .filter(|s| {
            s.name
                .as_deref()
                .is_some_and(|n| n.to_lowercase().ends_with("late"))
        })
        .map(|s| s.trace_id.as_str())
        .collect();
    let rows = |keep: &dyn Fn(&Summary) -> bool| -> Vec<Value> {
        oracle
            .iter()
            .filter(|s| keep(s))
            .map(Summary::to_json)
            .collect()
    };

    let range = format!("time:[{},{}]", support::ts(from), support::ts(to));
    let cases: Vec<(String, Vec<Value>)> = vec![
        (format!("{range} sort:duration_ms:desc"), rows(&|_| true)),
        (
            format!("{range} root_service_name:svc-r"),
            rows(&|s| s.root_service_name.as_deref() == Some("svc-r")),
        ),
        (
            format!("{range} span.name:%late"),
            rows(&|s| with_late_span.contains(s.trace_id.as_str())),
        ),
        (
            format!("{range} !span.name:%late sort:span_count:desc"),
            rows(&|s| !with_late_span.contains(s.trace_id.as_str())),
        ),
    ];
    let app = support::app(&db, None);
    for (q, want) in cases {
        let q = format!("in:otel_trace_summaries {q}");
        assert!(!want.is_empty(), "{q}: the oracle finds nothing");
        assert_eq!(on_the_fly_rows(&app, &q).await, want, "{q}");
    }
    summary_lookups_reach_the_long_traces(&app, &client, &oracle, &raw, &range, to).await;
    let q =
        format!(r#"in:otel_trace_summaries {range} root_service_name:svc-r stats:"count() as n""#);
    let r = support::query(&app, json!({ "query": q, "source": "on_the_fly" })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let n = oracle
        .iter()
        .filter(|s| s.root_service_name.as_deref() == Some("svc-r"))
        .count();
    assert_eq!(r.results()[0]["n"], json!(n), "{q}");

    // The window the service reads first counts the long traces touching the range: with
    // some, they are aggregated apart (above); with none, their branch is left out.
    let long_traces = |from: DateTime<Utc>, to: DateTime<Utc>| {
        let client = &client;
        async move {
            let catalog = store::summaries::catalog(client).await.expect("catalog");
            let plan = on_the_fly_plan(
                &catalog,
                &format!(
                    "in:otel_trace_summaries time:[{},{}] sort:duration_ms:desc",
                    support::ts(from),
                    support::ts(to)
                ),
            );
            let plan = store::exec::with_extent_read(client, &plan)
                .await
                .expect("window");
            plan.extent.and_then(|w| w.long_traces)
        }
    };
    assert!(long_traces(from, to).await > Some(0), "ancient, late_short");
    let quiet_to = to - Duration::days(3) - Duration::hours(4);
    let quiet_from = quiet_to - Duration::hours(3);
    assert_eq!(long_traces(quiet_from, quiet_to).await, Some(0));
    let mut quiet: Vec<Summary> = support::summarize(&raw)
        .into_iter()
        .filter(|s| s.timestamp >= quiet_from && s.timestamp <= quiet_to)
        .collect();
    quiet.sort_by(|a, b| a.trace_id.cmp(&b.trace_id));
    let quiet: Vec<Value> = quiet.iter().map(Summary::to_json).collect();
    let q = format!(
        "in:otel_trace_summaries time:[{},{}] sort:duration_ms:desc",
        support::ts(quiet_from),
        support::ts(quiet_to)
    );
    assert!(!quiet.is_empty(), "{q}: the oracle finds nothing");
    assert_eq!(on_the_fly_rows(&app, &q).await, quiet, "{q}");
}

/// The summary path's span conditions, whose lookups are bounded by the range widened by
/// the traces' reach (`srql_plan::trace_reach`): the traces whose matching spans lie
/// before that, by their extent ("ancient") or by a late span not drained yet
/// ("late_short"), still match, and still fail the negation.
async fn summary_lookups_reach_the_long_traces(
    app: &axum::Router,
    client: &tokio_postgres::Client,
    oracle: &[Summary],
    raw: &[support::RawSpan],
    range: &str,
    to: DateTime<Utc>,
) {
    let with_name = |suffix: &str| -> std::collections::BTreeSet<String> {
        raw.iter()
            .filter(|s| s.name.as_deref().is_some_and(|n| n.ends_with(suffix)))
            .map(|s| s.trace_id.clone())
            .collect()
    };
    let (late, ancient) = (with_name("late"), with_name("anc"));
    assert_eq!(late.len(), 1, "{late:?}");
    assert_eq!(ancient.len(), 1, "{ancient:?}");
    let ids = |keep: &dyn Fn(&str) -> bool| -> Vec<String> {
        oracle
            .iter()
            .map(|s| s.trace_id.clone())
            .filter(|id| keep(id))
            .collect()
    };
    let cases = [
        ("span.name:%late", ids(&|id| late.contains(id))),
        ("!span.name:%late", ids(&|id| !late.contains(id))),
        ("span.name:%anc", ids(&|id| ancient.contains(id))),
        ("!span.name:%anc", ids(&|id| !ancient.contains(id))),
    ];
    for (cond, want) in cases {
        let q = format!("in:otel_trace_summaries {range} {cond}");
        let first = support::query(app, json!({ "query": q, "source": "summaries" })).await;
        assert_eq!(first.status, StatusCode::OK, "{q}: {}", first.body);
        assert_eq!(first.source(), "summary_table", "{q}");
        let mut got: Vec<String> = support::all_pages(
            app,
            json!({ "query": q, "source": "summaries", "limit": 7 }),
        )
        .await
        .iter()
        .map(|r| r["trace_id"].as_str().unwrap_or_default().to_string())
        .collect();
        got.sort();
        assert!(!want.is_empty(), "{q}: the oracle finds nothing");
        assert_eq!(got, want, "{q}");
    }

    // What the service reads first: the window reaches back to both long traces' spans.
    let catalog = store::summaries::catalog(client).await.expect("catalog");
    let plan = srql_plan::compile(
        &format!("in:otel_trace_summaries {range} span.name:%late"),
        &catalog,
        &srql_plan::PageRequest::default(),
        &srql_lang::Limits::default(),
        Utc::now(),
    )
    .expect("plan");
    let plan = store::exec::with_extent_read(client, &plan)
        .await
        .expect("window");
    let window = plan.extent.expect("the window was read");
    let lo = window.lo.expect("bounded below");
    assert!(lo <= to - Duration::days(3), "{window:?}");
    assert!(lo > to - Duration::days(4), "{window:?}: not every day");
    assert!(window.hi.is_some_and(|hi| hi >= to), "{window:?}");
}

/// A plan whose window is read first runs in one transaction with it; when the query then
/// fails, the transaction is ended, so the session goes back to its pool usable.
#[tokio::test]
async fn a_query_failing_after_its_window_read_leaves_the_session_usable() {
    let db = TestDb::migrated().await;
    support::seed(&db, 500, 1, 5).await;
    let mut client = db.client().await;
    switch_to_incremental(&mut client).await;
    let catalog = store::summaries::catalog(&client).await.expect("catalog");
    let plan = on_the_fly_plan(
        &catalog,
        "in:otel_trace_summaries time:last_24h sort:duration_ms:desc",
    );
    assert!(
        srql_plan::extent_query(&plan).is_some(),
        "the window is read"
    );

    // Another session holds the spans: the window read passes, the query waits for
    // them until its statement timeout.
    let blocker = db.client().await;
    blocker
        .batch_execute("BEGIN; LOCK TABLE otel_traces IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    client
        .batch_execute("SET statement_timeout = '300ms'")
        .await
        .expect("timeout");
    let err = store::exec::run(&client, &plan)
        .await
        .expect_err("the query waits past its timeout");
    assert_eq!(err.fault(), store::db::Fault::StatementTimeout, "{err}");
    blocker.batch_execute("ROLLBACK").await.expect("unlock");

    let isolation: String = client
        .query_one("SHOW transaction_isolation", &[])
        .await
        .expect("the session answers, outside an aborted transaction")
        .get(0);
    assert_eq!(isolation, "read committed", "no transaction left open");
    let rows = store::exec::run(&client, &plan).await.expect("runs again");
    assert!(!rows.results.is_empty());
}

/// `query` compiled against `catalog` as the service would, pinned to the on-the-fly path.
fn on_the_fly_plan(catalog: &srql_plan::Catalog, query: &str) -> srql_plan::Plan {
    srql_plan::compile(
        query,
        catalog,
        &srql_plan::PageRequest::default(),
        &srql_lang::Limits::default(),
        Utc::now(),
    )
    .expect("plan")
    .pin_source(srql_plan::SourcePreference::OnTheFly)
    .expect("on the fly")
}
