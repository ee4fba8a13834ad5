//! One trace of any size, for what the generated workload never makes: a trace view of
//! thousands of spans. Four children per span over five services, an error every 997th
//! span, and one span whose parent never arrived (its last).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use workload::{Span, SpanResource, SpanRow, SpanScope};

pub fn wide_trace(trace_id: &str, spans: usize, at: DateTime<Utc>) -> Vec<Span> {
    let id = |i: usize| format!("{:016x}", 0xb190_0000_0000_0000_u64 + i as u64);
    let services: Vec<Arc<SpanResource>> = (0..5)
        .map(|n| {
            Arc::new(SpanResource {
                service_name: Some(format!("svc-{n}")),
                service_version: Some("1.0.0".into()),
                service_instance: Some("i-1".into()),
                attributes: "{}".into(),
            })
        })
        .collect();
    let scope = Arc::new(SpanScope {
        name: "wide-trace".into(),
        version: "1".into(),
    });
    (0..spans)
        .map(|i| {
            let start = at + Duration::microseconds(i as i64 * 50);
            let start_ns = start.timestamp_nanos_opt().unwrap_or(0);
            let (parent, name, ms) = match i {
                0 => (String::new(), "wide-trace".to_string(), 900),
                _ if i == spans - 1 => ("ffffffffffffffff".into(), format!("op-{i}"), 20),
                _ => (id((i - 1) / 4), format!("op-{i}"), 5),
            };
            let row = SpanRow {
                timestamp: start,
                trace_id: trace_id.to_string(),
                span_id: id(i),
                parent_span_id: parent,
                name,
                kind: 1,
                start_time_unix_nano: start_ns,
                end_time_unix_nano: start_ns + ms * 1_000_000,
                resource: Arc::clone(&services[i % 5]),
                scope: Arc::clone(&scope),
                status_code: if i % 997 == 0 { 2 } else { 1 },
                status_message: String::new(),
                attributes: "{}".into(),
                events: "[]".into(),
                links: "[]".into(),
            };
            Span {
                row,
                arrival_delay_ms: 0,
            }
        })
        .collect()
}
