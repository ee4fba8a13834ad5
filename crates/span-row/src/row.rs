//! The row type.

use std::sync::Arc;

use chrono::{DateTime, Utc};

/// What the spans of one resource (one process, in OpenTelemetry terms) share. Stored
/// once per distinct value (`srql_resources`), the span keeping its id; only
/// `service_name` is also copied into each span, where summaries and filters read it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SpanResource {
    /// `service.name`; `None` (NULL) when the resource does not say.
    pub service_name: Option<String>,
    /// `service.version`.
    pub service_version: Option<String>,
    /// `service.instance.id` (the generator's pod name).
    pub service_instance: Option<String>,
    /// Every resource attribute, as a JSON object (`resource_attributes` of `srql_spans`).
    pub attributes: String,
}

/// The instrumentation scope (library) that produced the spans.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpanScope {
    pub name: String,
    pub version: String,
}

/// One `otel_traces` row except `created_at`, which the writer chooses (the column
/// default, or a simulated arrival for generated history).
///
/// Resource and scope are shared by reference count: an OTLP request carries each once
/// for many spans, and the generator has a fixed set of replicas and scopes, so neither
/// copies them per span.
///
/// Strings must not contain NUL (PostgreSQL text cannot hold it) and the JSON fields must
/// be valid JSON without `\u0000` escapes (jsonb rejects them): the producer guarantees
/// both, and a batch that breaks the rule fails as a whole with a data error.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpanRow {
    /// The partition key: the span's start, as OTel exporters write it.
    pub timestamp: DateTime<Utc>,
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// 16 lowercase hex digits, or empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// OpenTelemetry `SpanKind`.
    pub kind: i32,
    pub start_time_unix_nano: i64,
    pub end_time_unix_nano: i64,
    pub resource: Arc<SpanResource>,
    pub scope: Arc<SpanScope>,
    /// OpenTelemetry `StatusCode`.
    pub status_code: i32,
    pub status_message: String,
    /// A JSON object.
    pub attributes: String,
    /// A JSON array.
    pub events: String,
    /// A JSON array.
    pub links: String,
}

impl SpanRow {
    /// True for a root span (no parent).
    pub fn is_root(&self) -> bool {
        self.parent_span_id.is_empty()
    }

    /// Duration in nanoseconds (negative if the producer's clocks say so).
    pub fn duration_nanos(&self) -> i64 {
        self.end_time_unix_nano - self.start_time_unix_nano
    }
}
