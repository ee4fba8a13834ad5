//! From OTLP (protobuf and JSON) to `otel_traces` columns, checked on the stored rows.

#![recursion_limit = "256"]

mod common;

use axum::http::StatusCode;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use serde_json::{json, Value as J};

const START: u64 = 1_700_000_000_123_456_789;

/// Every column of the one row with `span_id`, as JSON, the timestamps as text.
async fn row(h: &Harness, span_id: &str) -> J {
    let r = h
        .sql()
        .await
        .query_one(
            "SELECT to_jsonb(t) - 'created_at' || jsonb_build_object(
                 'timestamp', to_char(timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'),
                 'created_recently', created_at > now() - interval '1 minute')
             FROM srql_spans t WHERE span_id = $1",
            &[&span_id],
        )
        .await
        .expect("one row");
    r.get(0)
}

/// The expected row of the span built by both `proto_request` and `JSON_REQUEST`.
fn expected(span_id: &str) -> J {
    json!({
        "timestamp": "2023-11-14T22:13:20.123456",
        "created_recently": true,
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "span_id": span_id,
        "parent_span_id": "",
        "name": "GET /cart",
        "kind": 2,
        "start_time_unix_nano": START,
        "end_time_unix_nano": START + 2_500_000,
        "service_name": "cart",
        "service_version": "3.1.0",
        "service_instance": "cart-7d9f",
        "scope_name": "io.opentelemetry.http",
        "scope_version": "1.2.0",
        "status_code": 2,
        "status_message": "upstream failed",
        "attributes": {
            "http.method": "GET",
            "http.status_code": 503,
            "retry": true,
            "ratio": 0.25,
            "not_a_number": "NaN",
            "tags": ["a", 1, false],
            "nested": {"inner": "x", "deep": {"n": -7}},
            "raw": "AAEC/w==",
            "empty": null,
            "big": 9007199254740993_i64
        },
        "resource_attributes": {
            "service.name": "cart",
            "service.version": "3.1.0",
            "service.instance.id": "cart-7d9f",
            "host.name": "node-3"
        },
        "events": [{
            "name": "exception",
            "time_unix_nano": START + 1_000,
            "attributes": {"exception.type": "IOError", "exception.message": "reset"}
        }],
        "links": [{
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "span_id": "00f067aa0ba902b7",
            "trace_state": "vendor=1",
            "attributes": {"link.kind": "follows"}
        }]
    })
}

fn attr(key: &str, value: Value) -> KeyValue {
    kv(key, value)
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn proto_request(span_id: &str) -> ExportTraceServiceRequest {
    let span = Span {
        trace_id: hex("0af7651916cd43dd8448eb211c80319c"),
        span_id: hex(span_id),
        parent_span_id: vec![0; 8],
        name: "GET /cart".into(),
        kind: 2,
        start_time_unix_nano: START,
        end_time_unix_nano: START + 2_500_000,
        attributes: vec![
            attr("http.method", s("GET")),
            attr("http.status_code", Value::IntValue(503)),
            attr("retry", Value::BoolValue(true)),
            attr("ratio", Value::DoubleValue(0.25)),
            attr("not_a_number", Value::DoubleValue(f64::NAN)),
            attr(
                "tags",
                Value::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(s("a")),
                        },
                        AnyValue {
                            value: Some(Value::IntValue(1)),
                        },
                        AnyValue {
                            value: Some(Value::BoolValue(false)),
                        },
                    ],
                }),
            ),
            attr(
                "nested",
                Value::KvlistValue(KeyValueList {
                    values: vec![
                        attr("inner", s("x")),
                        attr(
                            "deep",
                            Value::KvlistValue(KeyValueList {
                                values: vec![attr("n", Value::IntValue(-7))],
                            }),
                        ),
                    ],
                }),
            ),
            attr("raw", Value::BytesValue(vec![0, 1, 2, 255])),
            KeyValue {
                key: "empty".into(),
                value: Some(AnyValue { value: None }),
                key_strindex: 0,
            },
            attr("big", Value::IntValue(9_007_199_254_740_993)),
        ],
        events: vec![Event {
            time_unix_nano: START + 1_000,
            name: "exception".into(),
            attributes: vec![
                attr("exception.type", s("IOError")),
                attr("exception.message", s("reset")),
            ],
            dropped_attributes_count: 0,
        }],
        links: vec![Link {
            trace_id: hex("4bf92f3577b34da6a3ce929d0e0e4736"),
            span_id: hex("00f067aa0ba902b7"),
            trace_state: "vendor=1".into(),
            attributes: vec![attr("link.kind", s("follows"))],
            dropped_attributes_count: 0,
            flags: 0,
        }],
        status: Some(Status {
            message: "upstream failed".into(),
            code: 2,
        }),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    attr("service.name", s("cart")),
                    attr("service.version", s("3.1.0")),
                    attr("service.instance.id", s("cart-7d9f")),
                    attr("host.name", s("node-3")),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "io.opentelemetry.http".into(),
                    version: "1.2.0".into(),
                    ..Default::default()
                }),
                spans: vec![span],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// The same span in OTLP/JSON, written the lenient ways the encoding allows: 64-bit and
/// 32-bit integers as strings, enums by name or as strings, ids in upper case, nulls,
/// and fields this receiver does not know.
fn json_request(span_id: &str) -> String {
    json!({
        "resourceSpans": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "cart"}},
                {"key": "service.version", "value": {"stringValue": "3.1.0"}},
                {"key": "service.instance.id", "value": {"stringValue": "cart-7d9f"}},
                {"key": "host.name", "value": {"stringValue": "node-3"}}
            ], "droppedAttributesCount": "0"},
            "scopeSpans": [{
                "scope": {"name": "io.opentelemetry.http", "version": "1.2.0", "attributes": null},
                "spans": [{
                    "traceId": "0AF7651916CD43DD8448EB211C80319C",
                    "spanId": span_id,
                    "parentSpanId": "",
                    "name": "GET /cart",
                    "kind": "SPAN_KIND_SERVER",
                    "startTimeUnixNano": START.to_string(),
                    "endTimeUnixNano": START + 2_500_000,
                    "flags": "257",
                    "futureField": {"ignored": true},
                    "attributes": [
                        {"key": "http.method", "value": {"stringValue": "GET"}},
                        {"key": "http.status_code", "value": {"intValue": "503"}},
                        {"key": "retry", "value": {"boolValue": true}},
                        {"key": "ratio", "value": {"doubleValue": 0.25}},
                        {"key": "not_a_number", "value": {"doubleValue": "NaN"}},
                        {"key": "tags", "value": {"arrayValue": {"values": [
                            {"stringValue": "a"}, {"intValue": 1}, {"boolValue": false}
                        ]}}},
                        {"key": "nested", "value": {"kvlistValue": {"values": [
                            {"key": "inner", "value": {"stringValue": "x"}},
                            {"key": "deep", "value": {"kvlistValue": {"values": [
                                {"key": "n", "value": {"intValue": "-7"}}
                            ]}}}
                        ]}}},
                        {"key": "raw", "value": {"bytesValue": "AAEC/w=="}},
                        {"key": "empty", "value": {}},
                        {"key": "big", "value": {"intValue": "9007199254740993"}}
                    ],
                    "droppedAttributesCount": null,
                    "events": [{
                        "timeUnixNano": (START + 1_000).to_string(),
                        "name": "exception",
                        "attributes": [
                            {"key": "exception.type", "value": {"stringValue": "IOError"}},
                            {"key": "exception.message", "value": {"stringValue": "reset"}}
                        ]
                    }],
                    "links": [{
                        "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
                        "spanId": "00F067AA0BA902B7",
                        "traceState": "vendor=1",
                        "attributes": [{"key": "link.kind", "value": {"stringValue": "follows"}}]
                    }],
                    "status": {"code": "2", "message": "upstream failed"}
                }]
            }]
        }]
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_column_from_protobuf_over_grpc_and_http_and_from_json() {
    let mut h = Harness::start(any_past_time()).await;
    let router = h.http_router();

    let mut c = h.grpc_client().await;
    let resp = c
        .export(proto_request("00000000000000a1"))
        .await
        .expect("gRPC export")
        .into_inner();
    assert_eq!(resp.partial_success, None);

    let out = http_post(
        &router,
        "application/x-protobuf",
        None,
        proto_request("00000000000000a2").encode_to_vec(),
    )
    .await;
    assert_eq!(out.status, StatusCode::OK);

    let out = http_post(
        &router,
        "application/json; charset=utf-8",
        Some("gzip"),
        gzip(json_request("00000000000000A3").as_bytes()),
    )
    .await;
    assert_eq!(out.status, StatusCode::OK, "{:?}", out.body);
    assert_eq!(out.json(), json!({}));

    for id in ["00000000000000a1", "00000000000000a2", "00000000000000a3"] {
        assert_eq!(row(&h, id).await, expected(id), "span {id}");
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_resource_scope_and_status_and_out_of_range_times() {
    let mut h = Harness::start(any_past_time()).await;
    let mut bare = span(1, 1, "bare");
    bare.attributes.clear();
    bare.status = None;
    bare.kind = 0;
    bare.parent_span_id = span_id(9).to_vec();
    let mut future = span(1, 2, "too-late");
    future.end_time_unix_nano = u64::MAX;
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: None,
            scope_spans: vec![ScopeSpans {
                scope: None,
                spans: vec![bare, future],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    let mut c = h.grpc_client().await;
    let p = c
        .export(req)
        .await
        .expect("export")
        .into_inner()
        .partial_success
        .expect("one rejected");
    assert_eq!(p.rejected_spans, 1);
    assert!(
        p.error_message.contains("too-late") && p.error_message.contains("end_time_unix_nano"),
        "{}",
        p.error_message
    );
    let r = row(&h, "2222222222222201").await;
    assert_eq!(
        r["service_name"],
        J::Null,
        "no service.name: NULL, not a made-up name"
    );
    assert_eq!(r["service_version"], J::Null);
    assert_eq!(r["service_instance"], J::Null);
    assert_eq!(r["resource_attributes"], json!({}));
    assert_eq!(
        (&r["scope_name"], &r["scope_version"]),
        (&json!(""), &json!(""))
    );
    assert_eq!(
        (&r["status_code"], &r["status_message"]),
        (&json!(0), &json!(""))
    );
    assert_eq!(r["parent_span_id"], "2222222222222209");
    assert_eq!(
        (&r["attributes"], &r["events"], &r["links"]),
        (&json!({}), &json!([]), &json!([]))
    );
    assert_eq!(r["kind"], 0);
    h.stop().await;
}
