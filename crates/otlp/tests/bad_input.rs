//! Bad input on both protocols: the protocol's error or a partial success, never a
//! stored span that should not be, and never an effect on anyone else's request.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use otlp::rpc_status::RpcStatus;
use otlp::IngestConfig;
use prost::Message;

fn small_limit() -> usize {
    64 * 1024
}

async fn harness() -> Harness {
    Harness::start_with(any_past_time(), small_limit()).await
}

/// A valid request larger than `small_limit()` once encoded, that gzip shrinks a lot.
fn oversize_request() -> Vec<u8> {
    let mut sp = span(1, 1, "big");
    sp.attributes
        .push(kv("blob", s(&"x".repeat(small_limit() + 1))));
    request(vec![sp]).encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_bad_bodies_are_invalid_argument() {
    let mut h = harness().await;
    let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        (
            "malformed protobuf",
            grpc_frame(false, &[0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01]),
            None,
        ),
        ("oversize", grpc_frame(false, &oversize_request()), None),
        (
            "oversize once decompressed (gzip bomb)",
            grpc_frame(true, &gzip(&oversize_request())),
            Some("gzip"),
        ),
        (
            "bad gzip",
            grpc_frame(true, b"\x1f\x8b\x08\x00this is not deflate data"),
            Some("gzip"),
        ),
    ];
    for (what, body, encoding) in cases {
        let out = grpc_raw(h.grpc, body, encoding).await;
        assert_eq!(out.code, tonic::Code::InvalidArgument, "{what}: {out:?}");
    }
    // The same gzip framing with a good payload is accepted: the failures above are
    // about the bodies, not about compression as such.
    let good = request(vec![span(2, 1, "gzipped")]).encode_to_vec();
    let out = grpc_raw(h.grpc, grpc_frame(true, &gzip(&good)), Some("gzip")).await;
    assert_eq!(out.code, tonic::Code::Ok, "{out:?}");
    assert_eq!(h.span_names().await, ["gzipped"]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_bad_bodies_are_400_or_413_with_a_status_body() {
    let mut h = harness().await;
    let router = h.http_router();
    let proto = "application/x-protobuf";
    let json = "application/json";
    let cases: Vec<(&str, &str, Option<&str>, Vec<u8>)> = vec![
        (
            "malformed protobuf",
            proto,
            None,
            vec![0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01],
        ),
        (
            "malformed JSON",
            json,
            None,
            br#"{"resourceSpans": [ {"#.to_vec(),
        ),
        (
            "JSON of the wrong shape",
            json,
            None,
            br#"{"resourceSpans": {"not": "a list"}}"#.to_vec(),
        ),
        ("oversize", proto, None, oversize_request()),
        (
            "oversize once decompressed (gzip bomb)",
            proto,
            Some("gzip"),
            gzip(&oversize_request()),
        ),
        (
            "bad gzip",
            proto,
            Some("gzip"),
            b"\x1f\x8b\x08\x00garbage".to_vec(),
        ),
        (
            "bad gzip, JSON",
            json,
            Some("gzip"),
            b"not gzip at all".to_vec(),
        ),
    ];
    for (what, ct, enc, body) in cases {
        let out = http_post(&router, ct, enc, body).await;
        let expected = if what.starts_with("oversize") {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!(out.status, expected, "{what}");
        let (code, message) = if ct == proto {
            let st = RpcStatus::decode(out.body.as_ref()).expect("protobuf Status");
            (st.code, st.message)
        } else {
            let v = out.json();
            (
                i32::try_from(v["code"].as_i64().expect("code")).expect("i32"),
                v["message"].as_str().expect("message").to_string(),
            )
        };
        assert_eq!(code, tonic::Code::InvalidArgument as i32, "{what}");
        assert!(!message.is_empty(), "{what}: the status says why");
        assert_eq!(
            out.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some(ct),
            "{what}: the error is encoded like the request"
        );
    }
    let out = http_post(&router, "text/plain", None, b"hello".to_vec()).await;
    assert_eq!(out.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let out = http_post(&router, proto, Some("br"), vec![1, 2, 3]).await;
    assert_eq!(out.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(h.count_spans().await, 0);
    h.stop().await;
}

/// Spans with ids of the wrong length (or not hex, in JSON) are rejected one by one;
/// the rest of the request is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ids_are_a_partial_success_on_both_protocols() {
    let mut h = harness().await;
    let bad_spans = || {
        let mut short_trace = span(1, 2, "short-trace");
        short_trace.trace_id.pop();
        let mut long_span = span(1, 3, "long-span");
        long_span.span_id.push(7);
        let mut bad_parent = span(1, 4, "bad-parent");
        bad_parent.parent_span_id = vec![1, 2, 3];
        let mut zero_trace = span(1, 5, "zero-trace");
        zero_trace.trace_id = vec![0; 16];
        vec![
            span(1, 1, "good"),
            short_trace,
            long_span,
            bad_parent,
            zero_trace,
        ]
    };

    // gRPC.
    let mut c = h.grpc_client().await;
    let resp = c
        .export(request(bad_spans()))
        .await
        .expect("accepted")
        .into_inner();
    let p = resp.partial_success.expect("partial success");
    assert_eq!(p.rejected_spans, 4);
    assert!(
        p.error_message.contains("short-trace") && p.error_message.contains("15 bytes"),
        "{}",
        p.error_message
    );
    assert_eq!(h.span_names().await, ["good"]);

    // OTLP/HTTP protobuf.
    let router = h.http_router();
    let mut spans = bad_spans();
    spans[0].name = "good-http".into();
    spans[0].trace_id = trace_id(2).to_vec();
    let out = http_post(
        &router,
        "application/x-protobuf",
        None,
        request(spans).encode_to_vec(),
    )
    .await;
    assert_eq!(out.status, StatusCode::OK);
    let resp = ExportTraceServiceResponse::decode(out.body.as_ref()).expect("response");
    assert_eq!(
        resp.partial_success
            .expect("partial success")
            .rejected_spans,
        4
    );

    // OTLP/HTTP JSON: wrong length, and not hex at all.
    let body = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "11111111111111111111111111111103", "spanId": "2222222222222201", "name": "good-json"},
        {"traceId": "111111111111111111111111111111", "spanId": "2222222222222202", "name": "short-json"},
        {"traceId": "zz111111111111111111111111111103", "spanId": "2222222222222203", "name": "not-hex"},
        {"traceId": "11111111111111111111111111111103", "spanId": "2222222222222204", "parentSpanId": "xyz", "name": "parent-not-hex"}
    ]}]}]});
    let out = http_post(
        &router,
        "application/json",
        None,
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(out.status, StatusCode::OK);
    let v = out.json();
    assert_eq!(v["partialSuccess"]["rejectedSpans"], "3", "{v}");
    let msg = v["partialSuccess"]["errorMessage"]
        .as_str()
        .expect("message");
    assert!(
        msg.contains("not-hex") && msg.contains("short-json"),
        "{msg}"
    );

    // A fully accepted request has no partialSuccess at all.
    let out = http_post(
        &router,
        "application/json",
        None,
        br#"{"resourceSpans":[]}"#.to_vec(),
    )
    .await;
    assert_eq!(
        (out.status, out.json()),
        (StatusCode::OK, serde_json::json!({}))
    );

    assert_eq!(h.span_names().await, ["good", "good-http", "good-json"]);
    h.stop().await;
}

/// A bad request and a good one at the same time, on each protocol: the good one is
/// stored, whatever the bad one does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_request_does_not_affect_a_concurrent_good_one() {
    let mut h = Harness::start_with(
        IngestConfig {
            writers: 1,
            ..IngestConfig::default()
        },
        small_limit(),
    )
    .await;
    let router = h.http_router();
    // Both requests wait on one lock so they are in flight together.
    let lock = TableLock::take(&h.db).await;
    let mut c = h.grpc_client().await;
    let good_grpc =
        tokio::spawn(async move { c.export(request(vec![span(1, 1, "good-grpc")])).await });
    wait_for_blocked_copies(&h.db, 1).await;
    let r = router.clone();
    let good_http = tokio::spawn(async move {
        http_post(
            &r,
            "application/x-protobuf",
            None,
            request(vec![span(2, 1, "good-http")]).encode_to_vec(),
        )
        .await
    });
    wait_for_queued(h.ingest(), 1).await;
    let bad = [
        grpc_raw(h.grpc, grpc_frame(false, &[0xff; 40]), None)
            .await
            .code,
        grpc_raw(h.grpc, grpc_frame(true, b"garbage"), Some("gzip"))
            .await
            .code,
    ];
    assert_eq!(bad, [tonic::Code::InvalidArgument; 2]);
    let bad_http = http_post(&router, "application/json", None, b"{".to_vec()).await;
    assert_eq!(bad_http.status, StatusCode::BAD_REQUEST);
    let bomb = http_post(
        &router,
        "application/x-protobuf",
        Some("gzip"),
        gzip(&oversize_request()),
    )
    .await;
    assert_eq!(bomb.status, StatusCode::PAYLOAD_TOO_LARGE);
    lock.release().await;
    good_grpc
        .await
        .expect("task")
        .expect("good gRPC request stored");
    assert_eq!(good_http.await.expect("task").status, StatusCode::OK);
    assert_eq!(h.span_names().await, ["good-grpc", "good-http"]);
    h.stop().await;
}

/// Data the database refuses fails only its own request, even when it shares a COPY
/// with others. (Nothing the mapping produces is refused, so this submits a broken
/// record directly.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_refused_by_the_database_fails_only_the_culprit() {
    let mut h = Harness::start(IngestConfig {
        writers: 1,
        ..IngestConfig::default()
    })
    .await;
    let record = |name: &str, attributes: &str| store::ingest::SpanRow {
        timestamp: chrono::DateTime::from_timestamp_nanos(1_700_000_000_000_000_000),
        resource: Arc::new(store::ingest::SpanResource {
            attributes: "{}".into(),
            ..Default::default()
        }),
        scope: Arc::new(store::ingest::SpanScope::default()),
        trace_id: "11111111111111111111111111111111".into(),
        span_id: "2222222222222222".into(),
        parent_span_id: String::new(),
        name: name.into(),
        kind: 1,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_000_000_001,
        status_code: 0,
        status_message: String::new(),
        attributes: attributes.into(),
        events: "[]".into(),
        links: "[]".into(),
    };
    let lock = TableLock::take(&h.db).await;
    let ingest = h.ingest().clone();
    let blocker = {
        let i = ingest.clone();
        let r = record("blocker", "{}");
        tokio::spawn(async move { i.submit(vec![r]).await })
    };
    wait_for_blocked_copies(&h.db, 1).await;
    let good = {
        let i = ingest.clone();
        let r = record("good", r#"{"a": 1}"#);
        tokio::spawn(async move { i.submit(vec![r]).await })
    };
    let bad = {
        let i = ingest.clone();
        let r = record("bad", r#"{"a": "\u0000"}"#);
        tokio::spawn(async move { i.submit(vec![r]).await })
    };
    wait_for_queued(&ingest, 2).await;
    lock.release().await;
    blocker.await.expect("task").expect("stored");
    good.await
        .expect("task")
        .expect("stored despite sharing a COPY with bad data");
    let err = bad.await.expect("task").expect_err("refused");
    assert!(matches!(err, otlp::IngestError::Refused(_)), "{err:?}");
    assert_eq!(h.span_names().await, ["blocker", "good"]);
    drop(ingest);
    h.stop().await;
}

/// NUL cannot be stored by PostgreSQL (text or jsonb); it is replaced, not refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_are_replaced_not_refused() {
    let mut h = harness().await;
    let mut sp = span(1, 1, "a\0b");
    sp.attributes = vec![kv("k\0", s("v\0"))];
    sp.status = Some(opentelemetry_proto::tonic::trace::v1::Status {
        message: "m\0".into(),
        code: 2,
    });
    let mut c = h.grpc_client().await;
    let resp = c
        .export(request(vec![sp]))
        .await
        .expect("stored")
        .into_inner();
    assert_eq!(resp.partial_success, None);
    let row = h
        .sql()
        .await
        .query_one(
            "SELECT name, status_message, attributes FROM otel_traces",
            &[],
        )
        .await
        .expect("row");
    assert_eq!(row.get::<_, String>(0), "a\u{FFFD}b");
    assert_eq!(row.get::<_, String>(1), "m\u{FFFD}");
    assert_eq!(
        row.get::<_, serde_json::Value>(2),
        serde_json::json!({"k\u{FFFD}": "v\u{FFFD}"})
    );
    h.stop().await;
}
