//! Abusive OTLP traffic keeps memory bounded by configuration: amplified bodies (millions
//! of empty spans in 8 MiB) on every protocol and encoding at once, beside requests just
//! under the span limit that only the decode budget serialises. Its own test binary, so
//! the process's peak RSS is this test's alone.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bytes::Bytes;
use common::*;
use otlp::admission::Limits;
use otlp::IngestConfig;
use tower::ServiceExt;

/// A field of /proc/self/status, in KiB.
fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

fn field(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let mut n = content.len();
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(content);
    out
}

fn empty_spans_protobuf(spans: usize) -> Vec<u8> {
    field(0x0a, &field(0x12, &[0x12u8, 0x00].repeat(spans)))
}

fn empty_spans_json(spans: usize) -> Vec<u8> {
    let mut out = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{}"#.to_vec();
    out.extend_from_slice(&b",{}".repeat(spans - 1));
    out.extend_from_slice(b"]}]}]}");
    out
}

/// Posts a shared body without copying it.
async fn post(router: &axum::Router, content_type: &str, body: Bytes) -> StatusCode {
    let req = Request::post("/v1/traces")
        .header("content-type", content_type)
        .body(Body::from(body))
        .expect("request");
    router.clone().oneshot(req).await.expect("answer").status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_amplified_requests_stay_within_the_decode_budget() {
    let budget = 64usize << 20;
    let max_body = otlp::DEFAULT_MAX_REQUEST_BYTES;
    let mut h = Harness::start(IngestConfig {
        limits: Limits {
            max_spans_per_request: 50_000,
            decode_budget_bytes: budget,
            budget_wait: Duration::from_secs(1),
            ..Limits::default()
        },
        ..IngestConfig::default()
    })
    .await;
    let router = h.http_router();
    // ~4.2M (protobuf) and ~2.8M (JSON) empty spans in 8 MiB: 1.6 GB and more each
    // once decoded, before the limits.
    let amplified = Bytes::from(empty_spans_protobuf((max_body - 16) / 2));
    let amplified_json = Bytes::from(empty_spans_json((max_body - 64) / 3));
    // Just under the span limit: each is admitted, but the budget holds one at a time.
    let under = Bytes::from(empty_spans_protobuf(50_000));
    let baseline = proc_status_kib("VmHWM:");

    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (r, b) = (router.clone(), amplified.clone());
        tasks.push(tokio::spawn(async move {
            (
                "http protobuf, amplified",
                post(&r, "application/x-protobuf", b).await.as_u16(),
            )
        }));
        let (r, b) = (router.clone(), amplified_json.clone());
        tasks.push(tokio::spawn(async move {
            (
                "http JSON, amplified",
                post(&r, "application/json", b).await.as_u16(),
            )
        }));
        let (addr, b) = (h.grpc, amplified.to_vec());
        tasks.push(tokio::spawn(async move {
            let out = grpc_raw(addr, grpc_frame(false, &b), None).await;
            ("gRPC, amplified", out.code as u16)
        }));
    }
    for _ in 0..8 {
        let (r, b) = (router.clone(), under.clone());
        tasks.push(tokio::spawn(async move {
            (
                "http protobuf, under the limit",
                post(&r, "application/x-protobuf", b).await.as_u16(),
            )
        }));
        let (addr, b) = (h.grpc, under.to_vec());
        tasks.push(tokio::spawn(async move {
            let out = grpc_raw(addr, grpc_frame(false, &b), None).await;
            ("gRPC, under the limit", out.code as u16)
        }));
    }
    let answers = tokio::time::timeout(Duration::from_secs(120), async {
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.expect("task"));
        }
        answers
    })
    .await
    .expect("every request answered within 120 s rather than hanging");

    let ok_grpc = tonic::Code::Ok as u16;
    let invalid = tonic::Code::InvalidArgument as u16;
    let exhausted = tonic::Code::ResourceExhausted as u16;
    // With the budget taken, even reading a body waits and may be told to retry.
    for (what, code) in &answers {
        let allowed: &[u16] = match *what {
            "http protobuf, amplified" | "http JSON, amplified" => &[413, 429],
            "gRPC, amplified" => &[invalid, exhausted],
            "http protobuf, under the limit" => &[200, 429],
            _ => &[ok_grpc, exhausted],
        };
        assert!(allowed.contains(code), "{what}: answered {code}");
    }
    // (Which ones get room to be read depends on timing; limits.rs checks the refusal
    // on every protocol one request at a time.)
    assert!(
        answers.iter().any(|(_, code)| *code == 413),
        "amplified bodies were read and refused as too large: {answers:?}"
    );
    // Empty spans have no ids: every admitted one is a partial success, nothing stored.
    assert_eq!(h.count_spans().await, 0);

    let growth_mib = proc_status_kib("VmHWM:").saturating_sub(baseline) / 1024;
    // Bodies being read count against the budget too, so: the budget, plus the test's
    // own copies of the gRPC bodies (4 amplified ones of 8 MiB, framed and sent) and
    // room for the runtime.
    let bound_mib = (budget >> 20) + 8 * (max_body >> 20) + 64;
    eprintln!("peak RSS grew by {growth_mib} MiB (bound {bound_mib} MiB)");
    assert!(
        growth_mib <= bound_mib as u64,
        "peak RSS grew by {growth_mib} MiB, more than {bound_mib} MiB"
    );
    h.stop().await;
}
