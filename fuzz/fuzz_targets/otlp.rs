//! What the OTLP receivers do with a body before writing it (the pre-scan, the protobuf
//! and JSON decoders, the mapping to rows) must never panic, whatever the bytes; and the
//! pre-scan, which decides what may be decoded, must never count fewer spans than
//! decoding finds.

#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use otlp::convert::{map_request, Rejections, TimeWindow};
use otlp::{json, prescan};
use prost::Message;

fuzz_target!(|data: &[u8]| {
    // Both sides of a window boundary are reachable from small timestamps.
    let window = TimeWindow {
        earliest: 1 << 20,
        latest: 1 << 62,
    };
    // The receivers decode only what the pre-scan admitted; the fuzzer follows the
    // same path, so prost and serde_json never see a body nested past the limit.
    if let Ok(shape) = prescan::protobuf(data) {
        if let Ok(request) = ExportTraceServiceRequest::decode(data) {
            let spans = spans(&request);
            assert_eq!(spans, shape.spans, "protobuf span count");
            let mut rejections = Rejections::default();
            let records = map_request(request, &window, &mut rejections);
            assert_eq!(records.len() as u64 + rejections.count(), spans);
        }
    }
    if let Ok(shape) = prescan::json(data) {
        let mut rejections = Rejections::default();
        if let Ok(request) = json::parse(data, &mut rejections) {
            let spans = spans(&request) + rejections.count();
            assert!(spans <= shape.spans, "JSON: {spans} spans, {} counted", shape.spans);
            map_request(request, &window, &mut rejections);
        }
    }
});

fn spans(request: &ExportTraceServiceRequest) -> u64 {
    request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len() as u64)
        .sum()
}
