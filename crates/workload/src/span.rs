//! The generated records: one `Span` per `otel_traces` row, grouped into a `Trace`.

use chrono::{DateTime, Utc};

/// OpenTelemetry `SpanKind` values, as stored in `otel_traces.kind`.
pub mod kind {
    pub const UNSPECIFIED: i32 = 0;
    pub const INTERNAL: i32 = 1;
    pub const SERVER: i32 = 2;
    pub const CLIENT: i32 = 3;
    pub const PRODUCER: i32 = 4;
    pub const CONSUMER: i32 = 5;
}

/// OpenTelemetry `StatusCode` values, as stored in `otel_traces.status_code`.
pub mod status {
    pub const UNSET: i32 = 0;
    pub const OK: i32 = 1;
    pub const ERROR: i32 = 2;
}

/// One span, field for field the columns of `otel_traces` (design/summaries.md), except
/// `created_at`, which the loader derives: the insert time plus `arrival_delay_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// Equals the start time, as OTel exporters write it.
    pub timestamp: DateTime<Utc>,
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits, unique within the trace.
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// One of [`kind`].
    pub kind: i32,
    pub start_time_unix_nano: i64,
    pub end_time_unix_nano: i64,
    pub service_name: String,
    pub service_version: String,
    /// The replica (pod) name, also `k8s.pod.name` in the resource attributes.
    pub service_instance: String,
    pub scope_name: String,
    pub scope_version: String,
    /// One of [`status`].
    pub status_code: i32,
    /// Empty unless `status_code` is ERROR.
    pub status_message: String,
    /// A JSON object.
    pub attributes: String,
    /// A JSON object.
    pub resource_attributes: String,
    /// A JSON array.
    pub events: String,
    /// A JSON array.
    pub links: String,
    /// How long after the rest of its trace this span should be inserted: 0 for most spans,
    /// up to 600 000 ms for the late ones.
    pub arrival_delay_ms: i64,
}

impl Span {
    /// True for a root span (no parent).
    pub fn is_root(&self) -> bool {
        self.parent_span_id.is_empty()
    }

    /// Duration in nanoseconds; never negative for generated spans.
    pub fn duration_nanos(&self) -> i64 {
        self.end_time_unix_nano - self.start_time_unix_nano
    }
}

/// All spans of one trace, parents before their children.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Trace {
    pub spans: Vec<Span>,
}

impl Trace {
    /// The trace id shared by every span (`None` only for an empty trace, which the
    /// generator never produces).
    pub fn trace_id(&self) -> Option<&str> {
        self.spans.first().map(|s| s.trace_id.as_str())
    }

    /// The root span, when it has not been dropped.
    pub fn root(&self) -> Option<&Span> {
        self.spans.iter().find(|s| s.is_root())
    }
}
