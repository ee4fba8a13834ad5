//! One trace of any size, for what the generated workload never makes: a trace view of
//! thousands of spans. Four children per span over five services, an error every 997th
//! span, and one span whose parent never arrived (its last).

use chrono::{DateTime, Duration, Utc};
use workload::Span;

pub fn wide_trace(trace_id: &str, spans: usize, at: DateTime<Utc>) -> Vec<Span> {
    let id = |i: usize| format!("{:016x}", 0xb190_0000_0000_0000_u64 + i as u64);
    (0..spans)
        .map(|i| {
            let start = at + Duration::microseconds(i as i64 * 50);
            let start_ns = start.timestamp_nanos_opt().unwrap_or(0);
            let (parent, name, ms) = match i {
                0 => (String::new(), "wide-trace".to_string(), 900),
                _ if i == spans - 1 => ("ffffffffffffffff".into(), format!("op-{i}"), 20),
                _ => (id((i - 1) / 4), format!("op-{i}"), 5),
            };
            Span {
                timestamp: start,
                trace_id: trace_id.to_string(),
                span_id: id(i),
                parent_span_id: parent,
                name,
                kind: 1,
                start_time_unix_nano: start_ns,
                end_time_unix_nano: start_ns + ms * 1_000_000,
                service_name: format!("svc-{}", i % 5),
                service_version: "1.0.0".into(),
                service_instance: "i-1".into(),
                scope_name: "wide-trace".into(),
                scope_version: "1".into(),
                status_code: if i % 997 == 0 { 2 } else { 1 },
                status_message: String::new(),
                attributes: "{}".into(),
                resource_attributes: "{}".into(),
                events: "[]".into(),
                links: "[]".into(),
                arrival_delay_ms: 0,
            }
        })
        .collect()
}
