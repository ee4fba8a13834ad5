//! Shared by the server's integration tests: seeded data, an independent oracle of the
//! summary definition (plain Rust over the raw spans, not the service's SQL), and an
//! HTTP helper that drives the real router.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the support code"
)]

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{json, Value};
use server::{AppState, ServiceConfig};
use srql_bench::spans::{copy_spans, Arrival};
use store::testing::TestDb;
use tower::ServiceExt;
use workload::{Generator, Span, SpanResource, SpanRow, SpanScope, WorkloadConfig};

pub mod span_oracle;

/// The router over `db`, with the catalog re-read on every request so tests see refreshes
/// at once. Queries run as a login in `srql_reader`, as in `srql serve`, so every API
/// test also proves the API needs nothing more.
pub fn app(db: &TestDb, api_key: Option<&str>) -> Router {
    let pool = store::db::pool(&db.reader_url(), 8).expect("pool");
    let config = ServiceConfig {
        api_key: api_key.map(str::to_string),
        catalog_ttl: std::time::Duration::ZERO,
        // The oracle tests compare both paths on the same query.
        allow_source_override: true,
        ..ServiceConfig::default()
    };
    server::app(AppState::new(pool, config))
}

/// [`app`] over a freshly refreshed summary view of a week's window, the default: what
/// the tests comparing both paths query.
pub async fn app_over_view(db: &TestDb) -> Router {
    let config = store::summaries::SummaryConfig {
        window: Duration::days(7),
        retention: Duration::days(7),
        refresh_interval: Duration::minutes(2),
    };
    let mut client = db.client().await;
    store::summaries::ensure_view(&mut client, &config)
        .await
        .expect("build view");
    store::summaries::refresh(&client, store::summaries::RefreshMethod::Concurrently)
        .await
        .expect("refresh");
    app(db, None)
}

pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Response {
    pub fn source(&self) -> &str {
        self.headers
            .get("x-srql-source")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn results(&self) -> &Vec<Value> {
        self.body["results"].as_array().expect("results array")
    }

    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
}

pub async fn send(app: &Router, req: Request<Body>) -> Response {
    let resp = app.clone().oneshot(req).await.expect("router answers");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
        .await
        .expect("body");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Response {
        status,
        headers,
        body,
    }
}

pub async fn post(app: &Router, path: &str, body: Value) -> Response {
    let req = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    send(app, req).await
}

pub async fn query(app: &Router, body: Value) -> Response {
    post(app, "/api/query", body).await
}

/// Every row of a query, following `next_cursor` page by page.
pub async fn all_pages(app: &Router, base: Value) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut body = base.clone();
    for _ in 0..10_000 {
        let r = query(app, body.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        rows.extend(r.results().iter().cloned());
        match r.body["pagination"]["next_cursor"].as_str() {
            Some(c) => body["cursor"] = json!(c),
            None => return rows,
        }
    }
    panic!("pagination did not end");
}

/// A span as the oracle sees it.
#[derive(Debug, Clone)]
pub struct RawSpan {
    pub timestamp: DateTime<Utc>,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub name: Option<String>,
    pub kind: Option<i32>,
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub service_name: Option<String>,
    pub status_code: Option<i32>,
    pub status_message: Option<String>,
    pub attributes: Option<Value>,
    pub resource_attributes: Option<Value>,
}

pub async fn raw_spans(db: &TestDb) -> Vec<RawSpan> {
    let client = db.client().await;
    client
        .query(
            "SELECT timestamp, trace_id, span_id, parent_span_id, name, kind, start_time_unix_nano,
                    end_time_unix_nano, service_name, status_code, status_message, attributes,
                    resource_attributes FROM srql_spans",
            &[],
        )
        .await
        .expect("read spans")
        .iter()
        .map(|r| RawSpan {
            timestamp: r.get(0),
            trace_id: r.get(1),
            span_id: r.get(2),
            parent_span_id: r.get(3),
            name: r.get(4),
            kind: r.get(5),
            start: r.get(6),
            end: r.get(7),
            service_name: r.get(8),
            status_code: r.get(9),
            status_message: r.get(10),
            attributes: r.get(11),
            resource_attributes: r.get(12),
        })
        .collect()
}

/// A trace summary computed in Rust from the field definitions of docs/srql.md ("Trace summaries").
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub timestamp: DateTime<Utc>,
    pub trace_id: String,
    pub root_span_id: Option<String>,
    pub root_span_name: Option<String>,
    pub root_service_name: Option<String>,
    pub root_span_kind: Option<i32>,
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub duration_ms: f64,
    pub status_code: Option<i32>,
    pub status_message: Option<String>,
    pub service_set: Vec<String>,
    pub span_count: i64,
    pub error_count: i64,
}

fn max_of<T: Ord + Clone>(items: impl Iterator<Item = Option<T>>) -> Option<T> {
    items.flatten().max()
}

pub fn summarize(spans: &[RawSpan]) -> Vec<Summary> {
    let mut by_trace: BTreeMap<&str, Vec<&RawSpan>> = BTreeMap::new();
    for s in spans {
        by_trace.entry(&s.trace_id).or_default().push(s);
    }
    by_trace
        .into_iter()
        .map(|(id, spans)| {
            let roots: Vec<&&RawSpan> = spans
                .iter()
                .filter(|s| s.parent_span_id.as_deref().unwrap_or("").is_empty())
                .collect();
            let start = spans.iter().filter_map(|s| s.start).min();
            let end = spans.iter().filter_map(|s| s.end).max();
            let length = match (start, end) {
                (Some(s), Some(e)) => (e - s).max(0),
                _ => 0,
            };
            let mut services: Vec<String> = spans
                .iter()
                .filter_map(|s| s.service_name.clone())
                .collect();
            services.sort();
            services.dedup();
            Summary {
                timestamp: spans.iter().map(|s| s.timestamp).max().expect("a span"),
                trace_id: id.to_string(),
                root_span_id: max_of(roots.iter().map(|s| Some(s.span_id.clone()))),
                root_span_name: max_of(roots.iter().map(|s| s.name.clone())),
                root_service_name: max_of(roots.iter().map(|s| s.service_name.clone())),
                root_span_kind: max_of(roots.iter().map(|s| s.kind)),
                start,
                end,
                duration_ms: length as f64 / 1e6,
                status_code: max_of(roots.iter().map(|s| s.status_code)),
                status_message: max_of(roots.iter().map(|s| s.status_message.clone())),
                service_set: services,
                span_count: spans.len() as i64,
                error_count: spans.iter().filter(|s| s.status_code == Some(2)).count() as i64,
            }
        })
        .collect()
}

pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl Summary {
    /// The row as the API must render it (srql.md's key order and JSON conventions).
    pub fn to_json(&self) -> Value {
        json!({
            "timestamp": ts(self.timestamp),
            "trace_id": self.trace_id,
            "root_span_id": self.root_span_id,
            "root_span_name": self.root_span_name,
            "root_service_name": self.root_service_name,
            "root_span_kind": self.root_span_kind,
            "start_time_unix_nano": self.start,
            "end_time_unix_nano": self.end,
            "duration_ms": self.duration_ms,
            "status_code": self.status_code,
            "status_message": self.status_message,
            "service_set": self.service_set,
            "span_count": self.span_count,
            "error_count": self.error_count,
        })
    }
}

/// Hand-made traces for the edges the generator rarely hits: no root, NULL service,
/// spans hours apart, duplicates, NULL times, several services in odd byte order.
pub fn edge_traces(now: DateTime<Utc>) -> Vec<Span> {
    let scope = std::sync::Arc::new(SpanScope {
        name: "edge".into(),
        version: "1".into(),
    });
    let base = |trace: &str, span: &str, parent: &str, at: DateTime<Utc>, service: &str| {
        let row = SpanRow {
            timestamp: at,
            trace_id: trace.to_string(),
            span_id: span.to_string(),
            parent_span_id: parent.to_string(),
            name: format!("op-{span}"),
            kind: 2,
            start_time_unix_nano: at.timestamp_nanos_opt().unwrap_or(0),
            end_time_unix_nano: at.timestamp_nanos_opt().unwrap_or(0) + 5_000_000,
            resource: std::sync::Arc::new(SpanResource {
                service_name: Some(service.to_string()),
                service_version: Some("1.0.0".into()),
                service_instance: Some("i-1".into()),
                attributes: "{}".into(),
            }),
            scope: scope.clone(),
            status_code: 1,
            status_message: String::new(),
            attributes: "{}".into(),
            events: "[]".into(),
            links: "[]".into(),
        };
        Span {
            row,
            arrival_delay_ms: 0,
        }
    };
    let h = Duration::hours;
    let mut spans = vec![
        // Spans three hours apart: straddles many range edges.
        base(
            "edge00000000000000000000000long",
            "a1",
            "",
            now - h(30),
            "svc-9",
        ),
        base(
            "edge00000000000000000000000long",
            "a2",
            "a1",
            now - h(28),
            "Svc-B",
        ),
        base(
            "edge00000000000000000000000long",
            "a3",
            "a1",
            now - h(27),
            "svc-10",
        ),
        // No root at all.
        base(
            "edge000000000000000000000noroot",
            "b2",
            "b1",
            now - h(5),
            "svc-1",
        ),
        base(
            "edge000000000000000000000noroot",
            "b3",
            "b1",
            now - h(5),
            "svc-2",
        ),
        // A duplicate delivery of the same span.
        base(
            "edge000000000000000000000dupli",
            "c1",
            "",
            now - h(2),
            "svc-3",
        ),
        base(
            "edge000000000000000000000dupli",
            "c1",
            "",
            now - h(2),
            "svc-3",
        ),
    ];
    // Errors on a child and on the root.
    let mut err_root = base(
        "edge0000000000000000000000error",
        "d1",
        "",
        now - h(3),
        "svc-4",
    );
    err_root.status_code = 2;
    err_root.status_message = "boom".into();
    let mut err_child = base(
        "edge0000000000000000000000error",
        "d2",
        "d1",
        now - h(3),
        "svc-5",
    );
    err_child.status_code = 2;
    spans.push(err_root);
    spans.push(err_child);
    // A child that ends before the root starts: duration never negative.
    let mut early = base(
        "edge000000000000000000000000neg",
        "e1",
        "",
        now - h(4),
        "svc-6",
    );
    early.start_time_unix_nano = 2_000;
    early.end_time_unix_nano = 1_000;
    spans.push(early);
    spans
}

/// Traces straddling the edge of a `window` ending at `now`: a root just outside, a child
/// just inside (and the reverse for a trace wholly outside).
pub fn window_edge_traces(now: DateTime<Utc>, window: Duration) -> Vec<Span> {
    let edge = now - window;
    let mut spans = Vec::new();
    for (trace, root_at, child_at) in [
        (
            "edge0000000000000000000straddle",
            edge - Duration::minutes(30),
            edge + Duration::minutes(30),
        ),
        (
            "edge000000000000000000000outside",
            edge - Duration::minutes(90),
            edge - Duration::minutes(60),
        ),
    ] {
        let mut t = edge_traces(now);
        t.truncate(2);
        t[0].trace_id = trace.into();
        t[0].timestamp = root_at;
        t[0].start_time_unix_nano = root_at.timestamp_nanos_opt().unwrap_or(0);
        t[0].end_time_unix_nano = t[0].start_time_unix_nano + 1_000_000;
        t[1].trace_id = trace.into();
        t[1].timestamp = child_at;
        t[1].start_time_unix_nano = child_at.timestamp_nanos_opt().unwrap_or(0);
        t[1].end_time_unix_nano = t[1].start_time_unix_nano + 1_000_000;
        spans.extend(t);
    }
    spans
}

/// Loads generated traces over the last `days` (on-time spans only, holding back the late
/// ones, which are returned) plus the edge traces.
pub async fn seed(db: &TestDb, spans: u64, days: i64, seed: u64) -> Vec<Span> {
    let client = db.client().await;
    let now = Utc::now();
    store::partitions::ensure(
        &client,
        now - Duration::days(days + 2),
        now + Duration::days(1),
    )
    .await
    .expect("partitions");
    // Half an hour inside the oldest day asked for: a query without `time:` covers
    // retention (7 days) back from its own "now", so traces generated right at that edge
    // would leave the range between one request and the next of the same comparison.
    let config = WorkloadConfig::for_spans(
        seed,
        spans,
        now - Duration::days(days) + Duration::minutes(30),
        now - Duration::minutes(5),
    );
    let (late, on_time): (Vec<Span>, Vec<Span>) = Generator::new(config)
        .flat_map(|t| t.spans)
        .partition(|s| s.arrival_delay_ms > 0);
    copy_spans(&client, &on_time, Arrival::Simulated)
        .await
        .expect("copy");
    copy_spans(&client, &edge_traces(now), Arrival::Simulated)
        .await
        .expect("copy edges");
    // With SRQL_TEST_SEAL=1, every ended day is columnar from here on, and the late spans
    // the caller delivers land in sealed days.
    let sealed = db.seal_if_requested().await;
    assert!(
        sealed > 0 || !store::testing::sealing_requested(),
        "the spans reach back past midnight: some day must have been sealed"
    );
    late
}

pub async fn insert(db: &TestDb, spans: &[Span]) {
    let client = db.client().await;
    copy_spans(&client, spans, Arrival::At(Utc::now()))
        .await
        .expect("insert spans");
}
