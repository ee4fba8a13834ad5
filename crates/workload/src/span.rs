//! The generated records: one `Span` per `otel_traces` row, grouped into a `Trace`.

use std::ops::{Deref, DerefMut};

use span_row::SpanRow;

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

/// One generated span: the `otel_traces` row, and when the loader should insert it.
/// Reads and writes of the row's fields go through to [`SpanRow`] (`span.trace_id`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Span {
    pub row: SpanRow,
    /// How long after the rest of its trace this span should be inserted: 0 for most spans,
    /// up to 600 000 ms for the late ones. The loader derives `created_at` from it.
    pub arrival_delay_ms: i64,
}

impl Deref for Span {
    type Target = SpanRow;

    fn deref(&self) -> &SpanRow {
        &self.row
    }
}

impl DerefMut for Span {
    fn deref_mut(&mut self) -> &mut SpanRow {
        &mut self.row
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
