//! The HTTP API on the on-the-fly path (no summary view yet), checked against the Rust
//! oracle for every filter, sort and time form; keyset pages; bad input; auth.

mod support;

use std::cmp::Ordering;

use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use store::testing::TestDb;
use support::{ts, Summary};

type Pred = Box<dyn Fn(&Summary) -> bool>;

/// A query, the rows it must select, their order, and the page size.
type Case = (String, Pred, Vec<(Key, bool)>, usize);

#[derive(Clone, Copy)]
enum Key {
    Timestamp,
    Duration,
    SpanCount,
    ErrorCount,
    RootService,
}

fn cmp_key(a: &Summary, b: &Summary, k: Key) -> Ordering {
    match k {
        Key::Timestamp => a.timestamp.cmp(&b.timestamp),
        Key::Duration => a.duration_ms.total_cmp(&b.duration_ms),
        Key::SpanCount => a.span_count.cmp(&b.span_count),
        Key::ErrorCount => a.error_count.cmp(&b.error_count),
        Key::RootService => a
            .root_service_name
            .as_deref()
            .unwrap_or("")
            .cmp(b.root_service_name.as_deref().unwrap_or("")),
    }
}

/// The rows the API must return: filter, order by the keys (trace_id breaks ties in the
/// first key's direction), first `limit`.
fn expected(all: &[Summary], pred: &Pred, keys: &[(Key, bool)], limit: usize) -> Vec<Value> {
    let mut rows: Vec<&Summary> = all.iter().filter(|s| pred(s)).collect();
    let tie_desc = keys.first().map(|k| k.1).unwrap_or(true);
    rows.sort_by(|a, b| {
        for (k, desc) in keys {
            let o = cmp_key(a, b, *k);
            let o = if *desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        let o = a.trace_id.cmp(&b.trace_id);
        if tie_desc {
            o.reverse()
        } else {
            o
        }
    });
    rows.into_iter().take(limit).map(Summary::to_json).collect()
}

fn range(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    format!("time:[{},{}]", from.to_rfc3339(), to.to_rfc3339())
}

#[tokio::test]
async fn every_filter_sort_and_time_form_matches_an_independent_computation() {
    let db = TestDb::migrated().await;
    let late = support::seed(&db, 12_000, 3, 7).await;
    support::insert(&db, &late).await;
    let app = support::app(&db, None);
    let all = support::summarize(&support::raw_spans(&db).await);
    let now = Utc::now();
    let (from, to) = (now - Duration::hours(40), now - Duration::hours(2));
    let in_range = move |s: &Summary| s.timestamp >= from && s.timestamp <= to;
    let r = range(from, to);
    let ts_desc = vec![(Key::Timestamp, true)];

    let cases: Vec<Case> = vec![
        (format!("in:otel_trace_summaries {r}"), Box::new(in_range), ts_desc.clone(), 100),
        (format!("in:otel_trace_summaries {r} limit:7"), Box::new(in_range), ts_desc.clone(), 7),
        (
            format!("in:otel_trace_summaries {r} root_service_name:svc-3"),
            Box::new(move |s| in_range(s) && s.root_service_name.as_deref() == Some("svc-3")),
            ts_desc.clone(),
            100,
        ),
        (
            format!("in:otel_trace_summaries {r} !root_service_name:svc-3 limit:300"),
            Box::new(move |s| in_range(s) && s.root_service_name.as_deref() != Some("svc-3")),
            ts_desc.clone(),
            300,
        ),
        (
            format!("in:otel_trace_summaries {r} service_name:svc-10"),
            Box::new(move |s| in_range(s) && s.service_set.iter().any(|x| x == "svc-10")),
            ts_desc.clone(),
            100,
        ),
        (
            format!("in:otel_trace_summaries {r} service.name:(svc-1,Svc-B)"),
            Box::new(move |s| in_range(s) && s.service_set.iter().any(|x| x == "svc-1" || x == "Svc-B")),
            ts_desc.clone(),
            100,
        ),
        (
            format!("in:otel_trace_summaries {r} service_name:%SVC-B%"),
            Box::new(move |s| in_range(s) && s.service_set.iter().any(|x| x.to_lowercase().contains("svc-b"))),
            ts_desc.clone(),
            100,
        ),
        (
            format!("in:otel_trace_summaries {r} root_span_name:\"get /api/orders%\""),
            Box::new(move |s| {
                in_range(s)
                    && s.root_span_name
                        .as_deref()
                        .is_some_and(|n| n.to_lowercase().starts_with("get /api/orders"))
            }),
            ts_desc.clone(),
            100,
        ),
        (
            format!("in:otel_trace_summaries {r} !root_span_name:%users% limit:250"),
            Box::new(move |s| {
                in_range(s) && !s.root_span_name.as_deref().is_some_and(|n| n.to_lowercase().contains("users"))
            }),
            ts_desc.clone(),
            250,
        ),
        (
            format!("in:otel_trace_summaries {r} root_service_name:[svc-1,svc-2] !root_service_name:(svc-2)"),
            Box::new(move |s| in_range(s) && s.root_service_name.as_deref() == Some("svc-1")),
            ts_desc.clone(),
            100,
        ),
        (
            format!("in:otel_trace_summaries {r} status_code:2"),
            Box::new(move |s| in_range(s) && s.status_code == Some(2)),
            ts_desc.clone(),
            100,
        ),
        (
            format!("in:otel_trace_summaries {r} root_span_kind:(2,3) error_count:>0"),
            Box::new(move |s| in_range(s) && matches!(s.root_span_kind, Some(2 | 3)) && s.error_count > 0),
            ts_desc.clone(),
            100,
        ),
        (
            format!("in:otel_trace_summaries {r} span_count:>=5 span_count:<12 sort:span_count:asc"),
            Box::new(move |s| in_range(s) && s.span_count >= 5 && s.span_count < 12),
            vec![(Key::SpanCount, false)],
            100,
        ),
        (
            format!("in:otel_trace_summaries {r} duration_ms:>100.5 sort:duration_ms:desc"),
            Box::new(move |s| in_range(s) && s.duration_ms > 100.5),
            vec![(Key::Duration, true)],
            100,
        ),
        (
            format!("in:otel_trace_summaries {r} duration_ms:<=20 sort:duration_ms:asc"),
            Box::new(move |s| in_range(s) && s.duration_ms <= 20.0),
            vec![(Key::Duration, false)],
            100,
        ),
        (
            format!("in:otel_trace_summaries {r} sort:error_count:desc,duration_ms:asc limit:40"),
            Box::new(in_range),
            vec![(Key::ErrorCount, true), (Key::Duration, false)],
            40,
        ),
        (
            format!("in:otel_trace_summaries {r} order:root_service_name:asc limit:60"),
            Box::new(in_range),
            vec![(Key::RootService, false)],
            60,
        ),
        (
            "in:otel_trace_summaries trace_id:edge000000000000000000000noroot".to_string(),
            Box::new(|s| s.trace_id == "edge000000000000000000000noroot"),
            ts_desc.clone(),
            100,
        ),
        (
            "in:otel_trace_summaries trace_id:(edge000000000000000000000dupli,edge0000000000000000000000error)"
                .to_string(),
            Box::new(|s| s.trace_id.starts_with("edge000000000000000000000dupli") || s.trace_id == "edge0000000000000000000000error"),
            ts_desc.clone(),
            100,
        ),
        (
            format!("in:otel_trace_summaries time:[{},]", from.to_rfc3339()),
            Box::new(move |s| s.timestamp >= from),
            ts_desc.clone(),
            100,
        ),
        (
            format!("in:otel_trace_summaries time:[,{}] limit:50", to.to_rfc3339()),
            Box::new(move |s| s.timestamp <= to),
            ts_desc.clone(),
            50,
        ),
        (
            "in:otel_trace_summaries sort:timestamp:desc limit:20".to_string(),
            Box::new(|_| true),
            ts_desc.clone(),
            20,
        ),
    ];
    for (q, pred, keys, limit) in &cases {
        let resp = support::query(&app, json!({ "query": q })).await;
        assert_eq!(resp.status, StatusCode::OK, "{q}: {}", resp.body);
        assert_eq!(resp.source(), "on_the_fly", "{q}");
        let want = expected(&all, pred, keys, *limit);
        assert!(
            !want.is_empty() || q.contains("error_count:>0"),
            "case selects nothing, so it proves nothing: {q}"
        );
        assert_eq!(resp.results(), &want, "{q}");
    }
}

#[tokio::test]
async fn time_presets_select_the_trailing_period() {
    let db = TestDb::migrated().await;
    support::seed(&db, 4_000, 3, 11).await;
    let app = support::app(&db, None);
    for (preset, hours) in [
        ("last_1h", 1),
        ("last_24h", 24),
        ("2h", 2),
        ("last-2-days", 48),
        ("today", 24),
    ] {
        let before = Utc::now();
        let r = support::query(
            &app,
            json!({ "query": format!("in:otel_trace_summaries time:{preset} limit:500") }),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{preset}: {}", r.body);
        let oldest_allowed = ts(before - Duration::hours(hours) - Duration::seconds(5));
        for row in r.results() {
            let t = row["timestamp"].as_str().unwrap();
            assert!(
                t >= oldest_allowed.as_str(),
                "{preset}: {t} older than {oldest_allowed}"
            );
        }
        if preset != "today" {
            assert!(!r.results().is_empty(), "{preset} found nothing");
        }
    }
}

#[tokio::test]
async fn keyset_pages_concatenate_to_the_full_result_in_both_directions() {
    let db = TestDb::migrated().await;
    support::seed(&db, 3_000, 2, 3).await;
    let app = support::app(&db, None);
    let all = support::summarize(&support::raw_spans(&db).await);
    for (q, keys) in [
        ("in:otel_trace_summaries", vec![(Key::Timestamp, true)]),
        (
            "in:otel_trace_summaries sort:duration_ms:asc",
            vec![(Key::Duration, false)],
        ),
        (
            "in:otel_trace_summaries sort:span_count:desc,timestamp:asc",
            vec![(Key::SpanCount, true), (Key::Timestamp, false)],
        ),
    ] {
        let want = expected(
            &all,
            &(Box::new(|_: &Summary| true) as Pred),
            &keys,
            usize::MAX,
        );
        let pages = support::all_pages(&app, json!({ "query": q, "limit": 37 })).await;
        assert_eq!(pages, want, "{q}: pages concatenated");

        // Walk forward three pages, then back with `prev`.
        let mut cursor: Option<String> = None;
        let mut forward = Vec::new();
        for _ in 0..3 {
            let r =
                support::query(&app, json!({ "query": q, "limit": 10, "cursor": cursor })).await;
            forward.push(r.results().clone());
            cursor = r.body["pagination"]["next_cursor"]
                .as_str()
                .map(str::to_string);
        }
        let r = support::query(&app, json!({ "query": q, "limit": 10, "cursor": cursor })).await;
        let mut prev = r.body["pagination"]["prev_cursor"]
            .as_str()
            .map(str::to_string);
        for page in forward.iter().rev() {
            let r = support::query(
                &app,
                json!({ "query": q, "limit": 10, "cursor": prev, "direction": "prev" }),
            )
            .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            assert_eq!(r.results(), page, "{q}: prev page");
            prev = r.body["pagination"]["prev_cursor"]
                .as_str()
                .map(str::to_string);
        }
        assert!(prev.is_none(), "{q}: no page before the first");
    }
}

#[tokio::test]
async fn pages_neither_repeat_nor_skip_while_new_traces_arrive_at_the_head() {
    let db = TestDb::migrated().await;
    support::seed(&db, 2_000, 1, 5).await;
    let app = support::app(&db, None);
    let all = support::summarize(&support::raw_spans(&db).await);
    let want = expected(
        &all,
        &(Box::new(|_: &Summary| true) as Pred),
        &[(Key::Timestamp, true)],
        usize::MAX,
    );
    let mut got = Vec::new();
    let mut cursor: Option<String> = None;
    for i in 0u64.. {
        let r = support::query(
            &app,
            json!({ "query": "in:otel_trace_summaries", "limit": 50, "cursor": cursor }),
        )
        .await;
        got.extend(r.results().iter().cloned());
        // New traces land at the head between page requests.
        let fresh = workload::trace_at(99, i, Utc::now());
        support::insert(&db, &fresh.spans).await;
        cursor = match r.body["pagination"]["next_cursor"].as_str() {
            Some(c) => Some(c.to_string()),
            None => break,
        };
    }
    assert_eq!(got, want);
}

#[tokio::test]
async fn bad_and_hostile_input_gets_400_with_a_message_and_never_reaches_sql() {
    let db = TestDb::migrated().await;
    support::seed(&db, 500, 1, 1).await;
    let app = support::app(&db, None);
    let long = format!(
        "in:otel_trace_summaries root_span_name:{}",
        "a".repeat(10_240)
    );
    let hostile = [
        ("", "empty query"),
        (
            "in:otel_trace_summaries root_service_name:'",
            "expected a closing `'`",
        ),
        (
            "in:otel_trace_summaries; DROP TABLE otel_traces",
            "after `in:`",
        ),
        ("in:otel_trace_summaries -- comment", "found `--`"),
        ("in:otel_trace_summaries /* x */", "/*"),
        (
            "in:otel_trace_summaries limit:99999999999999999999",
            "limit",
        ),
        ("in:otel_trace_summaries span_count:>1e400", "span_count"),
        ("in:otel_trace_summaries duration_ms:NaN", "duration_ms"),
        (
            "in:otel_trace_summaries root_service_name:",
            "root_service_name",
        ),
        (
            "in:otel_trace_summaries status_code:\"2 OR 1=1\"",
            "status_code",
        ),
        ("in:otel_trace_summaries sort:trace_id;drop", "sort"),
        ("in:otel_trace_summaries wat:ünï", "wat"),
        ("in:otel_trace_summaries \u{0}", "position"),
        (long.as_str(), "8192"),
        (
            "in:otel_trace_summaries time:[2026-13-45T00:00:00Z,]",
            "time",
        ),
        ("in:otel_trace_summaries trace_id:(a,b", "list"),
    ];
    let mut wrong = Vec::new();
    for (q, needle) in hostile {
        let r = support::query(&app, json!({ "query": q })).await;
        if r.status != StatusCode::BAD_REQUEST
            || !r.error().to_lowercase().contains(&needle.to_lowercase())
        {
            wrong.push(format!(
                "{q:.80} -> {} {:?} (wanted 400 mentioning {needle:?})",
                r.status,
                r.error()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Hostile values that are valid syntax are just values: bound, matched literally.
    let r = support::query(&app, json!({ "query": "in:otel_trace_summaries root_service_name:\"x'; DROP TABLE otel_traces; --\"" })).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.results().is_empty());
    let r = support::query(&app, json!({ "query": "in:otel_trace_summaries limit:5" })).await;
    assert_eq!(r.results().len(), 5, "spans table intact");

    for (body, needle) in [
        (json!({}), "query"),
        (json!({ "query": 5 }), "query"),
        (json!({ "query": "in:traces", "limit": 0 }), "limit"),
        (json!({ "query": "in:traces", "limit": -3 }), "limit"),
        (
            json!({ "query": "in:traces", "direction": "sideways" }),
            "direction",
        ),
        (
            json!({ "query": "in:traces", "cursor": "not-a-cursor" }),
            "cursor",
        ),
        (json!({ "query": "in:traces", "surprise": 1 }), "surprise"),
    ] {
        let r = support::query(&app, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert!(r.error().contains(needle), "{body}: {}", r.error());
    }
    let not_json = axum::http::Request::post("/api/query")
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{not json"))
        .unwrap();
    let r = support::send(&app, not_json).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let no_type = axum::http::Request::post("/api/query")
        .body(axum::body::Body::from("{\"query\":\"in:traces\"}"))
        .unwrap();
    assert_eq!(
        support::send(&app, no_type).await.status,
        StatusCode::BAD_REQUEST
    );
    let huge = axum::http::Request::post("/api/query")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(format!(
            "{{\"query\":\"{}\"}}",
            "a".repeat(200_000)
        )))
        .unwrap();
    assert_eq!(
        support::send(&app, huge).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

#[tokio::test]
async fn cursor_from_another_sort_is_rejected() {
    let db = TestDb::migrated().await;
    support::seed(&db, 500, 1, 2).await;
    let app = support::app(&db, None);
    let r = support::query(&app, json!({ "query": "in:otel_trace_summaries limit:5" })).await;
    let c = r.body["pagination"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_string();
    let r = support::query(
        &app,
        json!({ "query": "in:otel_trace_summaries sort:duration_ms limit:5", "cursor": c }),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.error().contains("cursor belongs to sort"),
        "{}",
        r.error()
    );
}

#[tokio::test]
async fn api_key_is_required_when_configured() {
    let db = TestDb::migrated().await;
    let app = support::app(&db, Some("s3cret"));
    let body = json!({ "query": "in:otel_trace_summaries limit:1" }).to_string();
    let req = |key: Option<&str>| {
        let mut b =
            axum::http::Request::post("/api/query").header("content-type", "application/json");
        if let Some(k) = key {
            b = b.header("x-api-key", k);
        }
        b.body(axum::body::Body::from(body.clone())).unwrap()
    };
    assert_eq!(
        support::send(&app, req(None)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let wrong = support::send(&app, req(Some("s3cre"))).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.error().contains("x-api-key"));
    assert_eq!(
        support::send(&app, req(Some("s3cret"))).await.status,
        StatusCode::OK
    );
    // Health and metrics stay open for probes.
    let health = axum::http::Request::get("/healthz")
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(support::send(&app, health).await.status, StatusCode::OK);
}

#[tokio::test]
async fn spans_entity_rollup_and_stats() {
    let db = TestDb::migrated().await;
    support::seed(&db, 3_000, 1, 4).await;
    let app = support::app(&db, None);
    let spans = support::raw_spans(&db).await;

    // One trace's spans.
    let r = support::query(
        &app,
        json!({ "query": "in:traces trace_id:edge0000000000000000000000error" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.source(), "spans");
    let ids: Vec<&str> = r
        .results()
        .iter()
        .map(|s| s["span_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    let first = &r.results()[0];
    let keys: Vec<&String> = first.as_object().unwrap().keys().collect();
    assert_eq!(
        keys[..4],
        ["timestamp", "trace_id", "span_id", "parent_span_id"]
    );
    assert!(
        first["attributes"].is_object(),
        "attributes are JSON, not a string"
    );

    // Rollup over root spans: true figures.
    let r = support::query(
        &app,
        json!({ "query": "in:otel_traces rollup_stats:summary service_name:svc-4" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let roots: Vec<&support::RawSpan> = spans
        .iter()
        .filter(|s| {
            s.parent_span_id.as_deref().unwrap_or("").is_empty()
                && s.service_name.as_deref() == Some("svc-4")
        })
        .collect();
    let mut durs: Vec<f64> = roots
        .iter()
        .map(|s| (s.end.unwrap_or(0) - s.start.unwrap_or(0)).max(0) as f64 / 1e6)
        .collect();
    durs.sort_by(f64::total_cmp);
    let row = &r.results()[0];
    assert_eq!(row["total"], json!(roots.len()));
    assert_eq!(
        row["errors"],
        json!(roots.iter().filter(|s| s.status_code == Some(2)).count())
    );
    let avg = durs.iter().sum::<f64>() / durs.len() as f64;
    assert!((row["avg_duration_ms"].as_f64().unwrap() - avg).abs() < 1e-6);
    // percentile_cont: linear interpolation between closest ranks.
    let pos = 0.95 * (durs.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let p95 = durs[lo] + (durs[hi] - durs[lo]) * (pos - lo as f64);
    assert!((row["p95_duration_ms"].as_f64().unwrap() - p95).abs() < 1e-6);

    // The older UI's stats query keeps working.
    let all = support::summarize(&spans);
    let r = support::query(
        &app,
        json!({ "query": "in:otel_trace_summaries stats:\"count() as total, sum(if(status_code != 1, 1, 0)) as error_traces, sum(if(duration_ms > 100, 1, 0)) as slow_traces\"" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.results()[0],
        json!({
            "total": all.len(),
            // A missing root status counts as 0, as upstream does.
            "error_traces": all.iter().filter(|s| s.status_code.unwrap_or(0) != 1).count(),
            "slow_traces": all.iter().filter(|s| s.duration_ms > 100.0).count(),
        })
    );
}

#[tokio::test]
async fn translate_shows_sql_binds_source_and_reason() {
    let db = TestDb::migrated().await;
    let app = support::app(&db, None);
    let r = support::post(
        &app,
        "/translate",
        json!({ "query": "in:otel_trace_summaries root_service_name:\"a'b\" limit:3" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let sql = r.body["sql"].as_str().unwrap();
    let params = r.body["binds"].as_array().unwrap();
    let n = 1 + params
        .iter()
        .position(|p| p == &json!("a'b"))
        .expect("value bound");
    assert!(sql.contains(&format!("root_service_name = ${n}")), "{sql}");
    assert!(!sql.contains("a'b"), "values never inlined");
    assert_eq!(r.body["source"], json!("on_the_fly"));
    assert_eq!(r.body["summaries"]["state"], json!("missing"));
    assert_eq!(r.body["pagination"]["limit"], json!(3));
    assert!(r.body["reason"]
        .as_str()
        .unwrap()
        .contains("does not exist"));
}

/// Each query's session settings (`app::session_settings`) reach PostgreSQL on the
/// connection that runs it: no JIT on any path, no parallel workers or hash joins for
/// summary pages, PostgreSQL's own defaults for reads of spans, and the configured
/// statement timeout.
/// One pooled connection, so the session the test inspects is the one the query ran on.
#[tokio::test]
async fn each_query_runs_with_its_session_settings() {
    let db = TestDb::migrated().await;
    support::seed(&db, 500, 1, 1).await;
    // Builds and refreshes the view; the router under test is the one below.
    let _ = support::app_over_view(&db).await;
    let pool = store::db::pool(&db.reader_url(), 1).expect("pool");
    let config = server::ServiceConfig {
        catalog_ttl: std::time::Duration::ZERO,
        allow_source_override: true,
        query_timeout: std::time::Duration::from_secs(7),
        ..server::ServiceConfig::default()
    };
    let app = server::app(server::AppState::new(pool.clone(), config));
    let setting = |name: &'static str| {
        let pool = pool.clone();
        async move {
            let client = pool.get().await.expect("the query's connection");
            let row = client
                .query_one(
                    "SELECT current_setting($1), reset_val FROM pg_settings WHERE name = $1",
                    &[&name],
                )
                .await
                .expect("setting");
            (row.get::<_, String>(0), row.get::<_, String>(1))
        }
    };
    for (source, label) in [
        ("summaries", "materialized_view"),
        ("on_the_fly", "on_the_fly"),
    ] {
        let r = support::query(
            &app,
            json!({ "query": "in:otel_trace_summaries time:last_24h limit:5", "source": source }),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{source}: {}", r.body);
        assert_eq!(r.source(), label);
        assert_eq!(setting("jit").await.0, "off", "{source}");
        assert_eq!(setting("statement_timeout").await.0, "7s", "{source}");
        let (workers, default) = setting("max_parallel_workers_per_gather").await;
        let want = if source == "summaries" {
            "0"
        } else {
            default.as_str()
        };
        assert_eq!(workers, want, "{source}");
        let (hash_joins, default) = setting("enable_hashjoin").await;
        let want = if source == "summaries" {
            "off"
        } else {
            default.as_str()
        };
        assert_eq!(
            hash_joins, want,
            "{source}: a page of summaries never hashes"
        );
    }
}
