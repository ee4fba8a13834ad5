//! ServiceRadar drop-in: the queries upstream's clients send (its traces tab's default and
//! query-builder shapes, its own tests' and language reference's queries, the earlier UI's
//! cards and sorts), each with the status and the rows upstream gives, checked against the
//! Rust oracle over the stored spans. Then paging the way its UI pages: cursors alone.

mod support;

use axum::http::StatusCode;
use chrono::{Duration, Utc};
use serde_json::{json, Value};
use store::testing::TestDb;
use support::{RawSpan, Response, Summary};

/// A trace whose root span name has a space, for the query builder's escaped patterns.
const SPACED_TRACE: &str = "edge0000000000000000000000space";

async fn seeded() -> (TestDb, axum::Router) {
    let db = TestDb::migrated().await;
    support::seed(&db, 2_000, 1, 11).await;
    let now = Utc::now();
    let mut spans = support::edge_traces(now);
    spans.truncate(2);
    for (span, (id, parent, name)) in spans
        .iter_mut()
        .zip([("s1", "", "GET /api/orders"), ("s2", "s1", "SELECT orders")])
    {
        span.trace_id = SPACED_TRACE.into();
        span.span_id = id.into();
        span.parent_span_id = parent.into();
        span.name = name.into();
        std::sync::Arc::make_mut(&mut span.resource).service_name = Some("svc-space".into());
        span.timestamp = now - Duration::minutes(20);
        span.start_time_unix_nano = span.timestamp.timestamp_nanos_opt().unwrap_or(0);
        span.end_time_unix_nano = span.start_time_unix_nano + 3_000_000;
    }
    support::insert(&db, &spans).await;
    let app = support::app(&db, None);
    (db, app)
}

async fn ask(app: &axum::Router, query: &str) -> Response {
    support::query(app, json!({ "query": query })).await
}

fn ok(r: &Response, what: &str) {
    assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.body);
}

fn header<'r>(r: &'r Response, name: &str) -> Option<&'r str> {
    r.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Traces newest first (trace_id breaks ties), as rendered by the API.
fn newest_first(all: &[Summary], keep: impl Fn(&Summary) -> bool) -> Vec<Value> {
    let mut rows: Vec<&Summary> = all.iter().filter(|s| keep(s)).collect();
    rows.sort_by(|a, b| {
        b.timestamp
            .cmp(&a.timestamp)
            .then_with(|| b.trace_id.cmp(&a.trace_id))
    });
    rows.into_iter().map(Summary::to_json).collect()
}

fn ids<'v>(rows: &'v [Value], key: &str) -> Vec<&'v str> {
    rows.iter().map(|r| r[key].as_str().unwrap_or("")).collect()
}

#[tokio::test]
async fn upstream_ui_builder_and_reference_queries_answer_as_upstream() {
    let (db, app) = seeded().await;
    let spans: Vec<RawSpan> = support::raw_spans(&db).await;
    let all = support::summarize(&spans);
    let day_ago = Utc::now() - Duration::hours(23);
    let recent = |s: &Summary| s.timestamp >= day_ago;

    // Its traces tab's default query: newest traces of the last day.
    let r = ask(
        &app,
        "in:otel_trace_summaries time:last_24h sort:timestamp:desc limit:20",
    )
    .await;
    ok(&r, "ui default");
    assert_eq!(r.results(), &newest_first(&all, recent)[..20]);
    assert_eq!(r.body["pagination"]["limit"], json!(20));

    // Its query builder escapes a space with a backslash; upstream itself rejects that.
    // (All seeded data is within the last 7 days.)
    let r = ask(
        &app,
        r"in:otel_trace_summaries time:last_7d root_span_name:%GET\ /api% sort:duration_ms:desc limit:50",
    )
    .await;
    ok(&r, "builder pattern");
    let matching = all
        .iter()
        .filter(|s| {
            s.root_span_name
                .as_deref()
                .is_some_and(|n| n.to_lowercase().contains("get /api"))
        })
        .count();
    assert!(matching > 1, "the workload has such names");
    assert_eq!(r.results().len(), matching.min(50));
    for row in r.results() {
        let name = row["root_span_name"].as_str().unwrap_or("");
        assert!(name.to_lowercase().contains("get /api"), "{name}");
    }
    let r = ask(
        &app,
        r"in:otel_trace_summaries time:last_24h root_service_name:svc-space root_span_name:GET\ /api/orders",
    )
    .await;
    ok(&r, "builder equality");
    assert_eq!(ids(r.results(), "trace_id"), [SPACED_TRACE]);

    // Entity aliases answer as the names they stand for.
    for (alias, canonical) in [
        (
            "in:traces_summaries time:last_24h limit:7",
            "in:otel_trace_summaries time:last_24h limit:7",
        ),
        (
            "in:trace_spans trace_id:edge0000000000000000000000error",
            "in:otel_traces trace_id:edge0000000000000000000000error",
        ),
    ] {
        let (a, c) = (ask(&app, alias).await, ask(&app, canonical).await);
        ok(&a, alias);
        assert!(!a.results().is_empty(), "{alias}");
        assert_eq!(a.results(), c.results(), "{alias}");
    }

    // Span fields and sorts its span view uses.
    let r = ask(
        &app,
        &format!(
            "in:trace_spans trace_id:{SPACED_TRACE} span_name:%orders span_kind:2 scope_version:1"
        ),
    )
    .await;
    ok(&r, "span fields");
    assert_eq!(
        ids(r.results(), "span_id"),
        ["s2", "s1"],
        "both names end in orders"
    );
    let r = ask(
        &app,
        "in:traces trace_id:edge00000000000000000000000long sort:end_time_unix_nano:asc",
    )
    .await;
    ok(&r, "sort end_time_unix_nano");
    assert_eq!(ids(r.results(), "span_id"), ["a1", "a2", "a3"]);
    let r = ask(
        &app,
        "in:traces trace_id:edge0000000000000000000000error sort:service_name:desc",
    )
    .await;
    ok(&r, "sort service_name");
    assert_eq!(ids(r.results(), "service_name"), ["svc-5", "svc-4"]);

    // Its language reference and time tests write ranges with a space, in UTC.
    let (from, to) = (
        Utc::now() - Duration::hours(6),
        Utc::now() - Duration::hours(2),
    );
    let spaced = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S").to_string();
    let rfc = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let a = ask(
        &app,
        &format!(
            "in:otel_trace_summaries time:[{},{}] limit:500",
            spaced(from),
            spaced(to)
        ),
    )
    .await;
    let b = ask(
        &app,
        &format!(
            "in:otel_trace_summaries time:[{},{}] limit:500",
            rfc(from),
            rfc(to)
        ),
    )
    .await;
    ok(&a, "spaced range");
    assert!(!a.results().is_empty());
    assert_eq!(
        a.results(),
        b.results(),
        "both spellings mean the same range"
    );

    // `stats:` with an unquoted alias.
    let a = ask(
        &app,
        "in:otel_trace_summaries time:last_24h stats:count() as total",
    )
    .await;
    let b = ask(
        &app,
        "in:otel_trace_summaries time:last_24h stats:\"count() as total\"",
    )
    .await;
    ok(&a, "unquoted stats");
    assert_eq!(a.results(), b.results());
    assert_eq!(
        a.body["pagination"]["limit"],
        json!(100),
        "the plan's limit for stats too"
    );

    // Keys upstream takes that change nothing for traces: accepted, and said so.
    let plain = ask(&app, "in:otel_trace_summaries time:last_24h limit:5").await;
    let r = ask(
        &app,
        "in:otel_trace_summaries time:last_24h window:5m mode:snapshot bounded:true include_deleted:false limit:5",
    )
    .await;
    ok(&r, "ignored keys");
    assert_eq!(r.results(), plain.results());
    assert_eq!(
        header(&r, "x-srql-ignored-keys"),
        Some("window,mode,bounded,include_deleted")
    );
    assert_eq!(header(&plain, "x-srql-ignored-keys"), None);
    let r = support::query(
        &app,
        json!({ "query": "in:otel_trace_summaries limit:1", "mode": "stream" }),
    )
    .await;
    ok(&r, "body mode");
    assert_eq!(header(&r, "x-srql-ignored-keys"), Some("mode"));

    // `limit:0` is a page of one row upstream.
    let r = ask(&app, "in:otel_trace_summaries time:last_24h limit:0").await;
    ok(&r, "limit:0");
    assert_eq!(r.results().len(), 1);
    assert_eq!(r.body["pagination"]["limit"], json!(1));

    // The earlier UI's cards: ok + not_ok = total, traces without a root included.
    let r = ask(
        &app,
        "in:otel_trace_summaries stats:\"count() as total, sum(if(status_code = 1, 1, 0)) as ok, sum(if(status_code != 1, 1, 0)) as not_ok\"",
    )
    .await;
    ok(&r, "cards");
    let row = &r.results()[0];
    let total = all.len();
    let good = all.iter().filter(|s| s.status_code == Some(1)).count();
    assert!(
        all.iter().any(|s| s.status_code.is_none()),
        "the data has a trace without a root"
    );
    assert_eq!(
        row,
        &json!({ "total": total, "ok": good, "not_ok": total - good })
    );

    // The earlier UI's sorts.
    for sort in [
        "duration_ms:desc",
        "span_count:desc",
        "error_count:desc",
        "root_service_name:asc",
        "timestamp:asc",
    ] {
        let r = ask(
            &app,
            &format!("in:otel_trace_summaries time:last_24h sort:{sort} limit:25"),
        )
        .await;
        ok(&r, sort);
        assert_eq!(r.results().len(), 25, "{sort}");
    }

    // Its reference's span and rollup queries.
    for q in [
        "in:traces time:last_1h service_name:svc-space limit:100",
        "in:otel_traces time:last_24h rollup_stats:summary",
        "in:otel_trace_summaries time:last_7d status_code:2 sort:timestamp:desc",
        "in:otel_trace_summaries time:last_24h duration_ms:>100 sort:duration_ms:desc limit:10",
    ] {
        let r = ask(&app, q).await;
        ok(&r, q);
        assert!(!r.results().is_empty(), "{q}");
    }
}

#[tokio::test]
async fn deliberate_differences_hold() {
    let (db, app) = seeded().await;
    let all = support::summarize(&support::raw_spans(&db).await);

    // A negated filter keeps traces without a root span; upstream's SQL drops them.
    let (from, to) = (Utc::now() - Duration::hours(6), Utc::now());
    let r = ask(
        &app,
        &format!(
            "in:otel_trace_summaries time:[{},{}] !root_service_name:svc-1 limit:500",
            support::ts(from),
            support::ts(to)
        ),
    )
    .await;
    ok(&r, "negation");
    let want = newest_first(&all, |s| {
        s.timestamp >= from && s.timestamp <= to && s.root_service_name.as_deref() != Some("svc-1")
    });
    assert!(want.len() < 500, "one page holds them all");
    assert_eq!(r.results(), &want);
    assert!(ids(r.results(), "trace_id").contains(&"edge000000000000000000000noroot"));

    // An unknown sort field or direction is a 400 naming the valid ones.
    let r = ask(&app, "in:otel_trace_summaries sort:bogus").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.error().contains("duration_ms"), "{}", r.error());
    let r = ask(&app, "in:otel_trace_summaries sort:timestamp:sideways").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.error().contains("`asc` or `desc`"), "{}", r.error());

    // `next_cursor` only when another row exists.
    let r = ask(
        &app,
        "in:otel_trace_summaries root_service_name:svc-space limit:1",
    )
    .await;
    ok(&r, "exact page");
    assert_eq!(r.results().len(), 1);
    assert!(r.body["pagination"]["next_cursor"].is_null());

    // Span rows carry JSON values and duration_ms.
    let r = ask(&app, "in:traces trace_id:edge0000000000000000000000error").await;
    let span = &r.results()[0];
    assert!(span["attributes"].is_object() && span["events"].is_array());
    assert!(span["duration_ms"].is_number());
}

#[tokio::test]
async fn translate_speaks_upstreams_shape_too() {
    let (_db, app) = seeded().await;
    let r = support::post(
        &app,
        "/translate",
        json!({ "query": "in:otel_trace_summaries time:last_1h root_service_name:svc-1 mode:snapshot limit:3" }),
    )
    .await;
    ok(&r, "translate");
    let b = &r.body;
    let binds = b["binds"].as_array().unwrap();
    let params = b["params"].as_array().unwrap();
    assert_eq!(binds.len(), params.len());
    assert!(
        params.contains(&json!({ "t": "text", "v": "svc-1" })),
        "{b}"
    );
    assert!(params.iter().any(|p| p["t"] == "timestamptz"), "{b}");
    assert_eq!(b["pagination"]["limit"], json!(3));
    assert_eq!(b["pagination"]["direction"], json!("next"));
    assert!(b["pagination"]
        .as_object()
        .unwrap()
        .contains_key("next_cursor"));
    let columns = b["viz"]["columns"].as_array().unwrap();
    assert_eq!(
        columns[0],
        json!({ "name": "timestamp", "type": "timestamp" })
    );
    assert!(columns.contains(&json!({ "name": "service_set", "type": "array" })));
    assert!(columns.contains(&json!({ "name": "duration_ms", "type": "float" })));
    assert!(!b["viz"]["suggestions"].as_array().unwrap().is_empty());
    assert_eq!(b["ignored_keys"], json!(["mode"]));
    assert_eq!(header(&r, "x-srql-ignored-keys"), Some("mode"));

    let r = support::post(
        &app,
        "/translate",
        json!({ "query": "in:otel_trace_summaries stats:count() as total limit:9" }),
    )
    .await;
    ok(&r, "translate stats");
    assert_eq!(r.body["pagination"]["limit"], json!(9));
    assert_eq!(
        r.body["viz"]["columns"],
        json!([{ "name": "total", "type": "integer" }])
    );
}

/// Ten pages forward with `next_cursor` alone, then back with `prev_cursor` alone, each
/// page compared with the same slice of one large page.
async fn walk_ten_pages(app: &axum::Router, query: &str) {
    const PAGE: usize = 7;
    let big = support::query(app, json!({ "query": query, "limit": PAGE * 10 })).await;
    ok(&big, query);
    let big = big.results().clone();
    assert_eq!(big.len(), PAGE * 10, "{query}: enough rows for ten pages");
    let page = |i: usize| &big[i * PAGE..(i + 1) * PAGE];

    let mut cursor: Option<String> = None;
    let mut prevs = Vec::new();
    for i in 0..10 {
        let mut body = json!({ "query": query, "limit": PAGE });
        if let Some(c) = &cursor {
            body["cursor"] = json!(c);
        }
        let r = support::query(app, body).await;
        ok(&r, query);
        assert_eq!(r.results(), page(i), "{query}: forward page {}", i + 1);
        let p = &r.body["pagination"];
        assert_eq!(
            p["prev_cursor"].is_null(),
            i == 0,
            "{query}: prev_cursor on page {}",
            i + 1
        );
        prevs.push(p["prev_cursor"].as_str().map(str::to_string));
        cursor = p["next_cursor"].as_str().map(str::to_string);
        assert!(cursor.is_some(), "{query}: more rows after page {}", i + 1);
    }
    // Back from page 10 with the cursors each page handed out, nothing else.
    let mut prev = prevs[9].clone();
    for i in (0..9).rev() {
        let r = support::query(
            app,
            json!({ "query": query, "limit": PAGE, "cursor": prev.as_deref().unwrap() }),
        )
        .await;
        ok(&r, query);
        assert_eq!(r.results(), page(i), "{query}: back to page {}", i + 1);
        prev = r.body["pagination"]["prev_cursor"]
            .as_str()
            .map(str::to_string);
        // Its next_cursor leads forward again, to the page after.
        let next = r.body["pagination"]["next_cursor"].as_str().unwrap();
        let again = support::query(
            app,
            json!({ "query": query, "limit": PAGE, "cursor": next }),
        )
        .await;
        assert_eq!(
            again.results(),
            page(i + 1),
            "{query}: forward from back-page {}",
            i + 1
        );
    }
    assert!(prev.is_none(), "{query}: no page before the first");
}

#[tokio::test]
async fn cursors_alone_page_forward_and_back_across_ten_pages() {
    let (_db, app) = seeded().await;
    for query in [
        "in:otel_trace_summaries",
        "in:otel_trace_summaries sort:duration_ms:asc",
        "in:traces sort:service_name:asc,duration_ms:desc",
    ] {
        walk_ten_pages(&app, query).await;
    }

    // A direction that contradicts the cursor is refused; one that agrees is fine.
    let r = ask(&app, "in:otel_trace_summaries limit:5").await;
    let next = r.body["pagination"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_string();
    let r = support::query(
        &app,
        json!({ "query": "in:otel_trace_summaries limit:5", "cursor": next, "direction": "prev" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.error().contains("contradicts the cursor"),
        "{}",
        r.error()
    );
    let r = support::query(
        &app,
        json!({ "query": "in:otel_trace_summaries limit:5", "cursor": next, "direction": "next" }),
    )
    .await;
    ok(&r, "agreeing direction");
}
