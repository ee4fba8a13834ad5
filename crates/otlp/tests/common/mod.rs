//! Shared by the OTLP integration tests: receivers on a fresh migrated database, OTLP
//! request builders, a raw gRPC caller (for bodies no well-behaved client would send),
//! the OTLP/HTTP router, and row readers.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the support code"
)]

use std::net::SocketAddr;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bytes::Bytes;
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use otlp::{IngestConfig, Options, Receivers};
use store::testing::TestDb;
use tokio::sync::watch;
use tonic::transport::Channel;
use tower::ServiceExt;

pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Receivers (gRPC and HTTP on ephemeral ports) over a fresh migrated database.
pub struct Harness {
    pub db: TestDb,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub max_request_bytes: usize,
    receivers: Option<Receivers>,
    stop: watch::Sender<bool>,
}

impl Harness {
    pub async fn start(ingest: IngestConfig) -> Harness {
        Self::start_with(ingest, otlp::DEFAULT_MAX_REQUEST_BYTES).await
    }

    pub async fn start_with(ingest: IngestConfig, max_request_bytes: usize) -> Harness {
        Self::start_options(Options {
            ingest,
            max_request_bytes,
            ..Options::default()
        })
        .await
    }

    /// With `options`' limits, token and TLS; the addresses are always ephemeral ports.
    pub async fn start_options(options: Options) -> Harness {
        let db = TestDb::migrated().await;
        let pool = store::db::pool(&db.url, options.ingest.writers + 1).expect("pool");
        let (stop, stop_rx) = watch::channel(false);
        let max_request_bytes = options.max_request_bytes;
        let receivers = otlp::start(
            pool,
            Options {
                grpc_listen: Some("127.0.0.1:0".into()),
                http_listen: Some("127.0.0.1:0".into()),
                ..options
            },
            stop_rx,
        )
        .await
        .expect("receivers start");
        Harness {
            db,
            grpc: receivers.grpc_addr.expect("grpc address"),
            http: receivers.http_addr.expect("http address"),
            max_request_bytes,
            receivers: Some(receivers),
            stop,
        }
    }

    pub fn ingest(&self) -> &otlp::Ingest {
        self.receivers.as_ref().expect("running").ingest()
    }

    /// The OTLP/HTTP routes on the same write path, called without a socket.
    pub fn http_router(&self) -> axum::Router {
        otlp::http::router(self.ingest().clone(), self.max_request_bytes)
    }

    pub async fn grpc_client(&self) -> TraceServiceClient<Channel> {
        srql_bench::otlp_export::connect(&format!("http://{}", self.grpc))
            .await
            .expect("grpc client connects")
    }

    /// Signals shutdown and waits until the queue is drained.
    pub async fn stop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(r) = self.receivers.take() {
            r.stopped().await;
        }
    }

    pub async fn sql(&self) -> tokio_postgres::Client {
        self.db.client().await
    }

    pub async fn count_spans(&self) -> i64 {
        self.sql()
            .await
            .query_one("SELECT count(*) FROM otel_traces", &[])
            .await
            .expect("count")
            .get(0)
    }

    pub async fn span_names(&self) -> Vec<String> {
        self.sql()
            .await
            .query("SELECT name FROM otel_traces ORDER BY name", &[])
            .await
            .expect("names")
            .iter()
            .map(|r| r.get(0))
            .collect()
    }
}

/// The default configuration, except that span start times back to 1926 are accepted:
/// for tests about something else that use fixed, long past timestamps.
pub fn any_past_time() -> IngestConfig {
    IngestConfig {
        limits: otlp::admission::Limits {
            retention: std::time::Duration::from_secs(100 * 366 * 86_400),
            ..otlp::admission::Limits::default()
        },
        ..IngestConfig::default()
    }
}

pub fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        key_strindex: 0,
    }
}

pub fn s(v: &str) -> Value {
    Value::StringValue(v.into())
}

/// A valid span: trace `t`, span `n` (both made into non-zero ids), named `name`.
pub fn span(t: u8, n: u8, name: &str) -> Span {
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) as u64;
    Span {
        trace_id: trace_id(t).to_vec(),
        span_id: span_id(n).to_vec(),
        name: name.into(),
        kind: 2,
        start_time_unix_nano: now,
        end_time_unix_nano: now + 1_000_000,
        attributes: vec![kv("k", s("v"))],
        status: Some(Status {
            message: String::new(),
            code: 1,
        }),
        ..Default::default()
    }
}

pub fn trace_id(t: u8) -> [u8; 16] {
    let mut id = [0x11u8; 16];
    id[15] = t;
    id
}

pub fn span_id(n: u8) -> [u8; 8] {
    let mut id = [0x22u8; 8];
    id[7] = n;
    id
}

/// One resource (`svc-test`), one scope, these spans.
pub fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s("svc-test"))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "test-scope".into(),
                    version: "1".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// What a gRPC call ended with: the status code, message and details.
#[derive(Debug)]
pub struct GrpcOutcome {
    pub code: tonic::Code,
    pub message: String,
    pub body: Bytes,
}

/// A gRPC frame: compressed flag, big-endian length, payload.
pub fn grpc_frame(compressed: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![u8::from(compressed)];
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Sends `body` (already framed) to Export as-is, with `grpc-encoding` if given: for
/// requests that a real client library refuses to produce.
pub async fn grpc_raw(addr: SocketAddr, body: Vec<u8>, encoding: Option<&str>) -> GrpcOutcome {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut req = Request::post(format!("http://{addr}{EXPORT_PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(e) = encoding {
        req = req.header("grpc-encoding", e);
    }
    let req = req
        .body(tonic::body::Body::new(Body::from(body)))
        .expect("request");
    let resp = channel.oneshot(req).await.expect("http/2 exchange");
    let headers = resp.headers().clone();
    let collected = resp.into_body().collect().await.expect("body");
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let body = collected.to_bytes();
    let from = |name: &str| {
        headers
            .get(name)
            .or_else(|| trailers.get(name))
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let code = from("grpc-status")
        .and_then(|c| c.parse::<i32>().ok())
        .map(tonic::Code::from_i32)
        .expect("a grpc-status");
    GrpcOutcome {
        code,
        message: from("grpc-message").unwrap_or_default(),
        body,
    }
}

/// The reply of the OTLP/HTTP router.
#[derive(Debug)]
pub struct HttpOutcome {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Bytes,
}

impl HttpOutcome {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

pub async fn http_post(
    router: &axum::Router,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> HttpOutcome {
    let mut req = Request::post("/v1/traces").header("content-type", content_type);
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    let resp = router
        .clone()
        .oneshot(req.body(Body::from(body)).expect("request"))
        .await
        .expect("router answers");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .expect("body");
    HttpOutcome {
        status,
        headers,
        body,
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// Holds an ACCESS EXCLUSIVE lock on `otel_traces` until dropped (or `release`d): every
/// COPY waits behind it, which stands in for a database that cannot keep up.
pub struct TableLock {
    client: tokio_postgres::Client,
}

impl TableLock {
    pub async fn take(db: &TestDb) -> TableLock {
        let client = db.client().await;
        client
            .batch_execute("BEGIN; LOCK TABLE otel_traces IN ACCESS EXCLUSIVE MODE")
            .await
            .expect("lock");
        TableLock { client }
    }

    pub async fn release(self) {
        self.client.batch_execute("COMMIT").await.expect("unlock");
    }
}

/// Waits until `n` sessions of `db` are blocked on a lock (the writers' COPYs).
pub async fn wait_for_blocked_copies(db: &TestDb, n: i64) {
    let client = db.client().await;
    for _ in 0..600 {
        let blocked: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'
                   AND query LIKE 'COPY \"otel_traces\" %'",
                &[],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        if blocked >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the writers never blocked on the table lock");
}

/// Waits until the ingest queue holds `n` requests.
pub async fn wait_for_queued(ingest: &otlp::Ingest, n: usize) {
    for _ in 0..600 {
        if ingest.stats().queued_requests >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the queue never reached {n} requests: {:?}", ingest.stats());
}
