//! What one request may cost, checked before decoding: span count, nesting, the shared
//! decode budget; and which span times are accepted at all.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue};
use otlp::admission::Limits;
use otlp::rpc_status::RpcStatus;
use otlp::IngestConfig;
use prost::Message;

const PROTO: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// A protobuf length prefix.
fn varint(mut n: usize, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn field(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    varint(content.len(), &mut out);
    out.extend_from_slice(content);
    out
}

/// An `ExportTraceServiceRequest` of about `bytes` bytes holding nothing but empty
/// spans (2 bytes each): the amplification attack, ~4.2M spans in 8 MiB.
pub fn empty_spans_protobuf(bytes: usize) -> Vec<u8> {
    let spans = [0x12u8, 0x00].repeat((bytes - 16) / 2);
    field(0x0a, &field(0x12, &spans))
}

/// The same in OTLP/JSON (3 bytes a span).
pub fn empty_spans_json(bytes: usize) -> Vec<u8> {
    let head = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{}"#;
    let tail = b"]}]}]}";
    let n = (bytes - head.len() - tail.len()) / 3;
    let mut out = head.to_vec();
    for _ in 0..n {
        out.extend_from_slice(b",{}");
    }
    out.extend_from_slice(tail);
    out
}

/// One span with `n` empty attributes (2 bytes each): amplification through elements
/// rather than spans.
fn empty_attributes_protobuf(n: usize) -> Vec<u8> {
    let span = field(0x12, &[0x4a, 0x00].repeat(n));
    field(0x0a, &field(0x12, &span))
}

/// grpc-message as sent is percent-encoded; spaces are all these tests need back.
fn grpc_message(out: &GrpcOutcome) -> String {
    out.message.replace("%20", " ")
}

fn status_of(out: &HttpOutcome, encoding: &str) -> RpcStatus {
    if encoding == PROTO {
        RpcStatus::decode(out.body.as_ref()).expect("google.rpc.Status")
    } else {
        let v = out.json();
        RpcStatus::new(
            tonic::Code::from_i32(i32::try_from(v["code"].as_i64().expect("code")).expect("i32")),
            v["message"].as_str().expect("message"),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amplified_bodies_are_refused_before_decoding_on_every_protocol() {
    let mut h = Harness::start(IngestConfig::default()).await;
    let router = h.http_router();
    let max = otlp::DEFAULT_MAX_REQUEST_BYTES;

    let proto = empty_spans_protobuf(max);
    let out = http_post(&router, PROTO, None, proto.clone()).await;
    assert_eq!(out.status, StatusCode::PAYLOAD_TOO_LARGE);
    let st = status_of(&out, PROTO);
    assert_eq!(st.code, tonic::Code::InvalidArgument as i32);
    assert!(
        st.message
            .contains("spans, more than the limit of 100000 per request"),
        "{}",
        st.message
    );

    let out = http_post(&router, JSON, None, empty_spans_json(max)).await;
    assert_eq!(out.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(status_of(&out, JSON)
        .message
        .contains("spans, more than the limit"));

    // Gzipped, the same body is tiny on the wire; it is counted once inflated.
    let out = http_post(&router, PROTO, Some("gzip"), gzip(&proto)).await;
    assert_eq!(out.status, StatusCode::PAYLOAD_TOO_LARGE);

    let out = grpc_raw(h.grpc, grpc_frame(false, &proto), None).await;
    assert_eq!(out.code, tonic::Code::InvalidArgument, "{out:?}");
    assert!(
        grpc_message(&out).contains("more than the limit"),
        "{out:?}"
    );
    let out = grpc_raw(h.grpc, grpc_frame(true, &gzip(&proto)), Some("gzip")).await;
    assert_eq!(out.code, tonic::Code::InvalidArgument, "{out:?}");

    // Few spans, millions of empty attributes: over the decode budget, also refused.
    let attrs = empty_attributes_protobuf(max / 2 - 16);
    let out = http_post(&router, PROTO, None, attrs.clone()).await;
    assert_eq!(out.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        status_of(&out, PROTO).message.contains("decode budget"),
        "{:?}",
        status_of(&out, PROTO)
    );
    let out = grpc_raw(h.grpc, grpc_frame(false, &attrs), None).await;
    assert_eq!(out.code, tonic::Code::InvalidArgument, "{out:?}");
    assert!(grpc_message(&out).contains("decode budget"), "{out:?}");

    // A body just over the byte limit is 413 too.
    let out = http_post(&router, PROTO, None, vec![0; max + 1]).await;
    assert_eq!(out.status, StatusCode::PAYLOAD_TOO_LARGE);

    assert_eq!(h.ingest().stats().refused_limits, 8);
    assert_eq!(h.count_spans().await, 0);
    h.stop().await;
}

fn nested(levels: usize) -> AnyValue {
    let mut value = AnyValue {
        value: Some(s("leaf")),
    };
    for _ in 0..levels {
        value = AnyValue {
            value: Some(Value::ArrayValue(ArrayValue {
                values: vec![value],
            })),
        };
    }
    value
}

fn nested_json(levels: usize) -> String {
    let mut value = r#"{"stringValue":"leaf"}"#.to_string();
    for _ in 0..levels {
        value = format!(r#"{{"arrayValue":{{"values":[{value}]}}}}"#);
    }
    let now = chrono::Utc::now().timestamp_nanos_opt().expect("now");
    format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"11111111111111111111111111111109","spanId":"2222222222222209","name":"json-nested","startTimeUnixNano":"{now}","attributes":[{{"key":"deep","value":{value}}}]}}]}}]}}]}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nesting_is_bounded_on_both_encodings() {
    let mut h = Harness::start(IngestConfig::default()).await;
    let router = h.http_router();
    let with_value = |name: &str, t: u8, v: AnyValue| {
        let mut sp = span(t, 1, name);
        sp.attributes = vec![otlp_kv("deep", v)];
        request(vec![sp]).encode_to_vec()
    };

    // Too deep: refused as a whole, with the reason.
    let deep = with_value("too-deep", 1, nested(40));
    let out = http_post(&router, PROTO, None, deep.clone()).await;
    assert_eq!(out.status, StatusCode::BAD_REQUEST);
    assert!(status_of(&out, PROTO).message.contains("deeper than 64"));
    let out = grpc_raw(h.grpc, grpc_frame(false, &deep), None).await;
    assert_eq!(out.code, tonic::Code::InvalidArgument, "{out:?}");
    assert!(grpc_message(&out).contains("deeper than 64"), "{out:?}");
    let out = http_post(&router, JSON, None, nested_json(25).into_bytes()).await;
    assert_eq!(out.status, StatusCode::BAD_REQUEST, "{:?}", out.json());
    assert!(status_of(&out, JSON).message.contains("deeper than 64"));

    // Twenty levels of nested values pass on both encodings.
    let ok = with_value("nested-proto", 2, nested(20));
    let out = http_post(&router, PROTO, None, ok).await;
    assert_eq!(out.status, StatusCode::OK);
    let out = http_post(&router, JSON, None, nested_json(15).into_bytes()).await;
    assert_eq!(out.status, StatusCode::OK, "{:?}", out.json());
    assert_eq!(h.span_names().await, ["json-nested", "nested-proto"]);
    h.stop().await;
}

fn otlp_kv(key: &str, value: AnyValue) -> opentelemetry_proto::tonic::common::v1::KeyValue {
    opentelemetry_proto::tonic::common::v1::KeyValue {
        key: key.into(),
        value: Some(value),
        key_strindex: 0,
    }
}

/// A request of `n` valid spans of trace `t`.
fn spans_request(t: u8, n: u8) -> Vec<u8> {
    request((1..=n).map(|i| span(t, i, &format!("t{t}-{i}"))).collect()).encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_decode_budget_says_retry_later_until_the_spans_holding_it_are_written() {
    // Room for one request of 200 spans (~200 × 2.6 KiB estimated) at a time.
    let mut h = Harness::start(IngestConfig {
        limits: Limits {
            decode_budget_bytes: 800 * 1024,
            budget_wait: Duration::from_millis(300),
            ..Limits::default()
        },
        retry_after: Duration::from_secs(3),
        ..IngestConfig::default()
    })
    .await;
    let router = h.http_router();
    let lock = TableLock::take(&h.db).await;

    let r1 = router.clone();
    let first =
        tokio::spawn(async move { http_post(&r1, PROTO, None, spans_request(1, 200)).await });
    wait_for_blocked_copies(&h.db, 1).await;

    // The first request's reservation lasts while its COPY waits.
    let out = http_post(&router, PROTO, None, spans_request(2, 200)).await;
    assert_eq!(out.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        out.headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("3")
    );
    let st = status_of(&out, PROTO);
    assert_eq!(st.code, tonic::Code::ResourceExhausted as i32);
    assert_eq!(st.retry_after(), Some(Duration::from_secs(3)));
    let out = grpc_raw(h.grpc, grpc_frame(false, &spans_request(3, 200)), None).await;
    assert_eq!(out.code, tonic::Code::ResourceExhausted, "{out:?}");
    assert_eq!(h.ingest().stats().refused_busy, 2);

    lock.release().await;
    assert_eq!(first.await.expect("task").status, StatusCode::OK);
    // Written, the budget is free again.
    let out = grpc_raw(h.grpc, grpc_frame(false, &spans_request(4, 200)), None).await;
    assert_eq!(out.code, tonic::Code::Ok, "{out:?}");
    assert_eq!(h.count_spans().await, 400);
    h.stop().await;
}

fn span_at(
    t: u8,
    n: u8,
    name: &str,
    start: chrono::DateTime<chrono::Utc>,
) -> opentelemetry_proto::tonic::trace::v1::Span {
    let nanos = start.timestamp_nanos_opt().expect("in range") as u64;
    let mut sp = span(t, n, name);
    sp.start_time_unix_nano = nanos;
    sp.end_time_unix_nano = nanos + 1_000;
    sp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_outside_the_time_window_are_rejected_one_by_one_and_make_no_partition() {
    let mut h = Harness::start(IngestConfig::default()).await;
    let router = h.http_router();
    let now = chrono::Utc::now();
    let day = chrono::Duration::days(1);
    let y2100 = chrono::DateTime::parse_from_rfc3339("2100-01-01T00:00:00Z")
        .expect("date")
        .to_utc();

    // Over gRPC: now and 30 min ahead are kept; 2 h ahead, 30 days back and 500
    // days from 2100 are rejected, each on its own.
    let mut spans = vec![
        span_at(1, 1, "now", now),
        span_at(1, 2, "soon", now + chrono::Duration::minutes(30)),
        span_at(1, 3, "two-hours-ahead", now + chrono::Duration::hours(2)),
        span_at(1, 4, "month-old", now - day * 30),
    ];
    spans.extend((0..200u8).map(|i| span_at(2, i, "far-future", y2100 + day * i32::from(i))));
    spans.extend(
        (0..200u8).map(|i| span_at(3, i, "far-future", y2100 + day * (200 + i32::from(i)))),
    );
    let mut c = h.grpc_client().await;
    let resp = c
        .export(request(spans))
        .await
        .expect("partial success is a success")
        .into_inner();
    let partial = resp.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 402);
    assert!(
        partial
            .error_message
            .contains("outside the accepted window"),
        "{}",
        partial.error_message
    );

    // Over HTTP/JSON the same rule.
    let body = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "11111111111111111111111111111104", "spanId": "2222222222222201", "name": "json-now",
         "startTimeUnixNano": now.timestamp_nanos_opt().expect("now").to_string()},
        {"traceId": "11111111111111111111111111111104", "spanId": "2222222222222202", "name": "json-2100",
         "startTimeUnixNano": y2100.timestamp_nanos_opt().expect("2100").to_string()}
    ]}]}]});
    let out = http_post(&router, JSON, None, body.to_string().into_bytes()).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.json()["partialSuccess"]["rejectedSpans"], "1");

    assert_eq!(h.span_names().await, ["json-now", "now", "soon"]);
    assert_eq!(h.ingest().stats().rejected_out_of_window, 403);

    // Nothing stored gives upkeep a reason to create a partition past its horizon.
    let client = h.sql().await;
    store::partitions::upkeep(&client, chrono::Duration::days(7))
        .await
        .expect("upkeep");
    let last = format!(
        "otel_traces_p{}",
        (now + chrono::Duration::days(store::partitions::DAYS_AHEAD + 1)).format("%Y%m%d")
    );
    let partitions = store::partitions::list(&client).await.expect("list");
    assert!(
        partitions.iter().all(|p| *p <= last),
        "partitions past the horizon: {partitions:?}"
    );
    h.stop().await;
}
