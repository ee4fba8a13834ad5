//! End to end with a real OpenTelemetry SDK: the Python SDK's OTLP exporters (gRPC and
//! HTTP/protobuf, each plain and gzipped) send a trace to the running receivers; the
//! spans and the trace summary are read back through SQL and through the SRQL HTTP API,
//! every field checked.
//!
//! The SDK is installed on first use into a virtualenv under the target directory
//! (pinned versions, reused while they match). No Python or no PyPI fails the test with
//! the reason: it is never skipped.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Utc};
use common::*;
use otlp::IngestConfig;
use serde_json::{json, Value};
use tower::ServiceExt;

/// What the test installs; the venv is rebuilt when this changes.
const REQUIREMENTS: &[&str] = &[
    "opentelemetry-sdk==1.45.2",
    "opentelemetry-exporter-otlp==1.45.2",
];

const MS: i64 = 1_000_000;

/// The venv's interpreter, creating the venv first if needed.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(install).as_path()
}

fn install() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("otlp-python");
    let venv = root.join("venv");
    let stamp = REQUIREMENTS.join("\n");
    let ready = |dir: &Path| {
        std::fs::read_to_string(dir.join("srql-requirements.txt")).is_ok_and(|s| s == stamp)
    };
    if ready(&venv) {
        return venv.join("bin").join("python");
    }
    std::fs::create_dir_all(&root).expect("create the venv's parent directory");
    // Built beside the final place and renamed into it, so a half-built venv (an
    // interrupted run, another test process) is never taken for a ready one.
    let building = root.join(format!("venv.building-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&building),
        "python3 -m venv (the OTLP end-to-end test needs CPython 3 with venv and pip)",
    );
    run(
        Command::new(building.join("bin").join("python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(REQUIREMENTS),
        "pip install of the OpenTelemetry Python SDK (PyPI must be reachable)",
    );
    std::fs::write(building.join("srql-requirements.txt"), &stamp).expect("write the stamp");
    let _ = std::fs::remove_dir_all(&venv);
    if std::fs::rename(&building, &venv).is_err() && !ready(&venv) {
        panic!("cannot move {} to {}", building.display(), venv.display());
    }
    let _ = std::fs::remove_dir_all(&building);
    venv.join("bin").join("python")
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the exporter script; returns its report, which must say the export succeeded.
async fn export_with_python(
    variant: String,
    protocol: String,
    endpoint: String,
    gzip: bool,
    base: i64,
) -> Value {
    let (report, stderr) = run_exporter(&variant, &protocol, &endpoint, gzip, base, &[]).await;
    assert_eq!(
        report["result"], "SUCCESS",
        "{variant}: the SDK's export result\n{stderr}"
    );
    report
}

/// Runs the exporter script with `env` (OTEL_* settings) added; returns its report and
/// what the SDK logged.
async fn run_exporter(
    variant: &str,
    protocol: &str,
    endpoint: &str,
    gzip: bool,
    base: i64,
    env: &[(&str, &str)],
) -> (Value, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python_sdk.py");
    let out = tokio::process::Command::new(python())
        .arg(script)
        .args([variant, protocol, endpoint])
        .arg(if gzip { "1" } else { "0" })
        .arg(base.to_string())
        // Nothing from the environment: no OTEL_* settings but `env`, no proxy for
        // loopback.
        .env_clear()
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .envs(env.iter().copied())
        .output()
        .await
        .expect("run the Python exporter");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{variant}: the Python exporter failed:\n{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout),
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{variant}: unexpected output ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&out.stdout),
        )
    });
    (report, stderr)
}

/// The columns of each span the script creates, keyed by name, except those the SDK
/// generates (ids, resource attributes), taken from its report.
fn expected_spans(report: &Value, variant: &str, base: i64) -> Vec<Value> {
    let spans = report["spans"].as_array().expect("spans");
    let id_of = |name: &str| {
        spans
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name} reported"))
    };
    let trace_id = id_of("GET /checkout")["trace_id"].clone();
    let root_id = id_of("GET /checkout")["span_id"].clone();
    let db_id = id_of("db.query")["span_id"].clone();
    let checkout = |scope: &str| {
        (
            json!("py-checkout"),
            json!("1.4.2"),
            json!("checkout-1"),
            json!(scope),
            json!("2.3.4"),
        )
    };
    let inventory = (
        json!("py-inventory"),
        json!("0.9.0"),
        json!("inventory-7"),
        json!("e2e.inventory"),
        json!("0.1.0"),
    );
    let rows = [
        (
            "GET /checkout",
            2,
            0,
            25,
            json!(""),
            checkout("e2e.checkout"),
            2,
            "boom",
            json!({"http.method": "GET", "http.status_code": 500, "retry.ratio": 0.25,
                   "cache.hit": false, "tags": ["a", "b"], "codes": [1, 2, 3], "variant": variant}),
            json!([]),
            json!([]),
        ),
        (
            "db.query",
            3,
            1,
            5,
            root_id.clone(),
            checkout("e2e.checkout"),
            0,
            "",
            json!({"db.system": "postgresql"}),
            json!([{"name": "cache.miss", "time_unix_nano": base + 2 * MS,
                    "attributes": {"key": "k1", "hits": 3}}]),
            json!([]),
        ),
        (
            "queue.publish",
            4,
            6,
            8,
            root_id.clone(),
            checkout("e2e.checkout"),
            2,
            "timeout",
            json!({}),
            json!([]),
            // The SDK marks links "is_remote known, not remote": SpanFlags 0x100.
            json!([{"trace_id": trace_id, "span_id": db_id, "attributes": {"link.kind": "follows"}, "flags": 256}]),
        ),
        (
            "reserve",
            5,
            9,
            20,
            root_id.clone(),
            inventory,
            1,
            "",
            json!({}),
            json!([]),
            json!([]),
        ),
    ];
    rows.into_iter()
        .map(
            |(
                name,
                kind,
                from_ms,
                to_ms,
                parent,
                (svc, ver, inst, scope, scope_ver),
                status,
                message,
                attrs,
                events,
                links,
            )| {
                let reported = id_of(name);
                json!({
                    "trace_id": trace_id,
                    "span_id": reported["span_id"],
                    "parent_span_id": parent,
                    "name": name,
                    "kind": kind,
                    "start_time_unix_nano": base + from_ms * MS,
                    "end_time_unix_nano": base + to_ms * MS,
                    "service_name": svc,
                    "service_version": ver,
                    "service_instance": inst,
                    "scope_name": scope,
                    "scope_version": scope_ver,
                    "status_code": status,
                    "status_message": message,
                    "attributes": attrs,
                    "resource_attributes": reported["resource"],
                    "events": events,
                    "links": links,
                })
            },
        )
        .collect()
}

async fn srql(app: &axum::Router, query: &str) -> Vec<Value> {
    let req = Request::post("/api/query")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({ "query": query, "limit": 100 }).to_string(),
        ))
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("answer");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    assert_eq!(
        status,
        StatusCode::OK,
        "{query}: {}",
        String::from_utf8_lossy(&bytes)
    );
    let body: Value = serde_json::from_slice(&bytes).expect("JSON");
    body["results"].as_array().expect("results").clone()
}

fn ts(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("a timestamp: {v}"))
}

fn without(v: &Value, keys: &[&str]) -> Value {
    let mut v = v.clone();
    for k in keys {
        v.as_object_mut().expect("object").remove(*k);
    }
    v
}

/// The exporters of the round trip: variant name, protocol, gzip.
const VARIANTS: [(&str, &str, bool); 4] = [
    ("grpc", "grpc", false),
    ("grpc-gzip", "grpc", true),
    ("http", "http", false),
    ("http-gzip", "http", true),
];

/// Exports one trace with each of [`VARIANTS`], all four at once (concurrent clients on
/// both protocols), the i-th starting at `base + i * 100 ms`; returns their reports.
async fn export_all_variants(
    grpc: std::net::SocketAddr,
    http: std::net::SocketAddr,
    base: i64,
) -> Vec<Value> {
    let grpc = format!("http://{grpc}");
    let http = format!("http://{http}/v1/traces");
    futures_join(
        VARIANTS
            .iter()
            .enumerate()
            .map(|(i, (v, p, g))| {
                let endpoint = if *p == "grpc" { &grpc } else { &http };
                export_with_python(
                    v.to_string(),
                    p.to_string(),
                    endpoint.clone(),
                    *g,
                    base + i as i64 * 100 * MS,
                )
            })
            .collect(),
    )
    .await
}

/// Reads every variant's trace back through SQL on `otel_traces` and through the SRQL
/// API (spans and summary) over the database at `url`, every field checked.
async fn check_round_trip(url: &str, sql: &tokio_postgres::Client, reports: &[Value], base: i64) {
    let pool = store::db::pool(url, 2).expect("pool");
    let app = server::app(server::AppState::new(
        pool,
        server::ServiceConfig {
            catalog_ttl: std::time::Duration::ZERO,
            ..server::ServiceConfig::default()
        },
    ));
    for (i, ((variant, ..), report)) in VARIANTS.iter().zip(reports).enumerate() {
        let base = base + i as i64 * 100 * MS;
        let expected = expected_spans(report, variant, base);
        let trace_id = expected[0]["trace_id"]
            .as_str()
            .expect("trace id")
            .to_string();
        let by_name = |rows: &[Value], name: &str| {
            rows.iter()
                .find(|r| r["name"] == name)
                .unwrap_or_else(|| panic!("{variant}: span {name} stored"))
                .clone()
        };

        // SQL on srql_spans (otel_traces with its resources).
        let rows: Vec<Value> = sql
            .query(
                "SELECT to_jsonb(t) FROM srql_spans t WHERE trace_id = $1",
                &[&trace_id],
            )
            .await
            .expect("spans")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(rows.len(), 4, "{variant}: four spans stored");
        for e in &expected {
            let row = by_name(&rows, e["name"].as_str().expect("name"));
            assert_eq!(
                without(&row, &["timestamp", "created_at"]),
                *e,
                "{variant}: SQL row"
            );
            let start = e["start_time_unix_nano"].as_i64().expect("start");
            assert_eq!(
                ts(&row["timestamp"]).timestamp_micros(),
                start / 1_000,
                "{variant}: timestamp is the start"
            );
            assert!(ts(&row["created_at"]) > Utc::now() - chrono::Duration::minutes(5));
        }

        // SRQL: in:traces.
        let api = srql(&app, &format!("in:traces trace_id:{trace_id}")).await;
        assert_eq!(api.len(), 4, "{variant}: four spans through SRQL");
        for e in &expected {
            let row = by_name(&api, e["name"].as_str().expect("name"));
            assert_eq!(
                without(&row, &["timestamp", "created_at", "duration_ms"]),
                *e,
                "{variant}: SRQL span row"
            );
            let (start, end) = (
                e["start_time_unix_nano"].as_i64().expect("start"),
                e["end_time_unix_nano"].as_i64().expect("end"),
            );
            assert_eq!(
                row["duration_ms"].as_f64(),
                Some((end - start) as f64 / 1e6)
            );
            assert_eq!(ts(&row["timestamp"]).timestamp_micros(), start / 1_000);
        }

        // SRQL: the trace summary.
        let summary = srql(
            &app,
            &format!("in:otel_trace_summaries trace_id:{trace_id}"),
        )
        .await;
        assert_eq!(summary.len(), 1, "{variant}: one summary row");
        let s = &summary[0];
        assert_eq!(
            without(s, &["timestamp"]),
            json!({
                "trace_id": trace_id,
                "root_span_id": expected[0]["span_id"],
                "root_span_name": "GET /checkout",
                "root_service_name": "py-checkout",
                "root_span_kind": 2,
                "start_time_unix_nano": base,
                "end_time_unix_nano": base + 25 * MS,
                "duration_ms": 25.0,
                "status_code": 2,
                "status_message": "boom",
                "service_set": ["py-checkout", "py-inventory"],
                "span_count": 4,
                "error_count": 2,
            }),
            "{variant}: summary"
        );
        // max(timestamp): the latest span start, `reserve`'s.
        assert_eq!(
            ts(&s["timestamp"]).timestamp_micros(),
            (base + 9 * MS) / 1_000
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_exports_over_grpc_and_http_and_every_field_reads_back() {
    tokio::task::spawn_blocking(python)
        .await
        .expect("python setup");
    let mut h = Harness::start(IngestConfig::default()).await;
    // A whole number of microseconds (timestamptz's precision), a minute ago.
    let base = (Utc::now().timestamp_micros() - 60_000_000) * 1_000;
    let reports = export_all_variants(h.grpc, h.http, base).await;
    check_round_trip(&h.db.url, &h.sql().await, &reports, base).await;
    assert_eq!(h.ingest().stats().spans, 16);
    h.stop().await;
}

/// The same round trip on a Citus cluster (`store::distributed_testing`): the receivers
/// write through the coordinator as the writer login, a drain on the shards makes the
/// summaries, and SQL and SRQL on the coordinator read back every field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_round_trip_on_citus() {
    use store::summaries::{Maintenance, RefreshMethod, RunOutcome, SummaryConfig, SummaryMode};
    tokio::task::spawn_blocking(python)
        .await
        .expect("python setup");
    let db = store::distributed_testing::CitusTestDb::empty().await;
    store::setup::run_distributed(
        &db.url,
        &SummaryConfig {
            window: chrono::Duration::days(7),
            retention: chrono::Duration::days(7),
            refresh_interval: chrono::Duration::minutes(2),
        },
        &Maintenance {
            mode: SummaryMode::Incremental,
            drain_interval: chrono::Duration::seconds(1),
        },
        false,
        &mut |_| {},
        Some(store::distributed::Distribution::Citus),
    )
    .await
    .expect("distributed migrate");
    let pool = store::db::pool(&db.writer_url(), 3).expect("writer pool");
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let receivers = otlp::start(
        pool,
        otlp::Options {
            grpc_listen: Some("127.0.0.1:0".into()),
            http_listen: Some("127.0.0.1:0".into()),
            ..otlp::Options::default()
        },
        stop_rx,
    )
    .await
    .expect("receivers start");
    let base = (Utc::now().timestamp_micros() - 60_000_000) * 1_000;
    let reports = export_all_variants(
        receivers.grpc_addr.expect("grpc address"),
        receivers.http_addr.expect("http address"),
        base,
    )
    .await;
    assert_eq!(receivers.ingest().stats().spans, 16);
    let _ = stop.send(true);
    tokio::time::timeout(std::time::Duration::from_secs(30), receivers.stopped())
        .await
        .expect("receivers stop within 30 s");
    let sql = db.client().await;
    let run = store::summaries::refresh(&sql, RefreshMethod::Concurrently)
        .await
        .expect("drain");
    assert_eq!(run.outcome, RunOutcome::Ok, "{run:?}");
    check_round_trip(&db.url, &sql, &reports, base).await;
}

/// Awaits all futures, in order (no extra crate for a join of four).
async fn futures_join<F: std::future::Future<Output = Value> + Send + 'static>(
    futs: Vec<F>,
) -> Vec<Value> {
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("exporter task"));
    }
    out
}

/// The SDK's exporters meet a full queue: gRPC gets RESOURCE_EXHAUSTED with RetryInfo,
/// HTTP gets 429 with Retry-After; both wait as told, retry, and every span arrives
/// once the database keeps up again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_retries_after_back_pressure_and_nothing_is_lost() {
    tokio::task::spawn_blocking(python)
        .await
        .expect("python setup");
    let mut h = Harness::start(IngestConfig {
        max_queued_requests: 1,
        writers: 1,
        retry_after: std::time::Duration::from_secs(1),
        // The lock stands for a slow database, not a dead one: longer than the exporters
        // take to start and be refused, shorter than this.
        write_timeout: std::time::Duration::from_secs(120),
        ..IngestConfig::default()
    })
    .await;
    let lock = TableLock::take(&h.db).await;
    let mut c1 = h.grpc_client().await;
    let first = tokio::spawn(async move { c1.export(request(vec![span(1, 1, "first")])).await });
    wait_for_blocked_copies(&h.db, 1).await;
    let mut c2 = h.grpc_client().await;
    let second = tokio::spawn(async move { c2.export(request(vec![span(2, 1, "second")])).await });
    wait_for_queued(h.ingest(), 1).await;

    let base = (Utc::now().timestamp_micros() - 60_000_000) * 1_000;
    let grpc = tokio::spawn(export_with_python(
        "grpc-retry".into(),
        "grpc".into(),
        format!("http://{}", h.grpc),
        false,
        base,
    ));
    let http = tokio::spawn(export_with_python(
        "http-retry".into(),
        "http".into(),
        format!("http://{}/v1/traces", h.http),
        false,
        base + 100 * MS,
    ));
    // Both exporters have been refused at least once before the database frees up.
    for _ in 0..600 {
        if h.ingest().stats().refused_busy >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        h.ingest().stats().refused_busy >= 2,
        "{:?}",
        h.ingest().stats()
    );
    lock.release().await;

    let reports = [
        grpc.await.expect("grpc exporter"),
        http.await.expect("http exporter"),
    ];
    first.await.expect("task").expect("first stored");
    second.await.expect("task").expect("second stored");
    let sql = h.sql().await;
    for report in &reports {
        let trace_id = report["spans"][0]["trace_id"]
            .as_str()
            .expect("trace id")
            .to_string();
        let n: i64 = sql
            .query_one(
                "SELECT count(*) FROM otel_traces WHERE trace_id = $1",
                &[&trace_id],
            )
            .await
            .expect("count")
            .get(0);
        assert_eq!(n, 4, "{}: every span arrived once", report["variant"]);
    }
    assert_eq!(h.count_spans().await, 2 + 8);
    h.stop().await;
}

/// As exporters are configured in real use: the token in OTEL_EXPORTER_OTLP_HEADERS and
/// the CA in OTEL_EXPORTER_OTLP_CERTIFICATE, over TLS, on both protocols. With the right
/// token every span arrives; with a wrong one the export fails, the SDK logs that it was
/// refused as unauthenticated, and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_sends_the_bearer_token_over_tls() {
    tokio::task::spawn_blocking(python)
        .await
        .expect("python setup");
    let certs = tls::testing::TestCertificates::generate();
    let mut h = Harness::start_options(otlp::Options {
        token: otlp::auth::Token::new("py-t0ken"),
        tls: Some(tls::TlsConfig::from_pem_files(&certs.cert, &certs.key).expect("TLS config")),
        ..otlp::Options::default()
    })
    .await;
    let ca = certs.ca.to_string_lossy().into_owned();
    let grpc = format!("https://localhost:{}", h.grpc.port());
    let http = format!("https://localhost:{}/v1/traces", h.http.port());
    let base = (Utc::now().timestamp_micros() - 60_000_000) * 1_000;
    let sql = h.sql().await;
    let stored = |report: &Value| {
        let trace_id = report["spans"][0]["trace_id"]
            .as_str()
            .expect("trace id")
            .to_string();
        let sql = &sql;
        async move {
            let n: i64 = sql
                .query_one(
                    "SELECT count(*) FROM otel_traces WHERE trace_id = $1",
                    &[&trace_id],
                )
                .await
                .expect("count")
                .get(0);
            n
        }
    };
    for (i, (protocol, endpoint, refusal)) in [
        ("grpc", grpc.as_str(), "UNAUTHENTICATED"),
        ("http", http.as_str(), "401"),
    ]
    .into_iter()
    .enumerate()
    {
        let base = base + i as i64 * 100 * MS;
        let right = [
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca.as_str()),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%20py-t0ken",
            ),
        ];
        let variant = format!("{protocol}-tls-token");
        let (report, stderr) =
            run_exporter(&variant, protocol, endpoint, false, base, &right).await;
        assert_eq!(report["result"], "SUCCESS", "{variant}: {stderr}");
        assert_eq!(stored(&report).await, 4, "{variant}: every span arrived");

        let wrong = [
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca.as_str()),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%20not-it",
            ),
        ];
        let variant = format!("{protocol}-tls-wrong-token");
        let (report, stderr) =
            run_exporter(&variant, protocol, endpoint, false, base + 50 * MS, &wrong).await;
        assert_eq!(report["result"], "FAILURE", "{variant}: {stderr}");
        assert!(
            stderr.contains(refusal),
            "{variant}: the SDK logs the refusal ({refusal}):\n{stderr}"
        );
        assert_eq!(stored(&report).await, 0, "{variant}: nothing stored");
    }
    assert_eq!(h.ingest().stats().spans, 8);
    h.stop().await;
}
