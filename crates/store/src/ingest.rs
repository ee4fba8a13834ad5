//! The row type of spans received from outside (OTLP), written by `spans.rs`'s binary COPY
//! encoder, the one the generated workload goes through too.
//!
//! Received spans share their resource and scope with the other spans of the same
//! request, so those parts are reference-counted instead of copied per span, and
//! `created_at` is left to the column default: `now()`, the writing transaction's start,
//! which is what the incremental summaries' capture log records as arrival too.

use std::borrow::Borrow;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use crate::db::DbError;
use crate::spans::{Row, RowCopy};

/// What the OTLP write path has done, as `/metrics` reports it. Defined here, below both
/// the receivers (which count) and the server (which renders), so neither depends on the
/// other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IngestStats {
    /// Requests whose spans were committed.
    pub requests: u64,
    /// Spans committed.
    pub spans: u64,
    /// COPY statements that committed.
    pub batches: u64,
    /// Requests refused because the queue or the decode budget was full.
    pub refused_busy: u64,
    /// Requests refused before decoding: too large, too many spans, too deep, malformed.
    pub refused_limits: u64,
    /// Spans rejected (in a partial success) for a start time outside
    /// [now - retention, now + max future].
    pub rejected_out_of_window: u64,
    /// Requests waiting for a writer now.
    pub queued_requests: usize,
}

/// What the spans of one resource (one process, in OpenTelemetry terms) share.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpanResource {
    /// `service.name`; `None` (NULL) when the resource does not say.
    pub service_name: Option<String>,
    /// `service.version`.
    pub service_version: Option<String>,
    /// `service.instance.id`.
    pub service_instance: Option<String>,
    /// Every resource attribute, as a JSON object.
    pub attributes_json: String,
}

/// The instrumentation scope (library) that produced the spans.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpanScope {
    pub name: String,
    pub version: String,
}

/// One `otel_traces` row. Strings must not contain NUL (PostgreSQL text cannot hold it)
/// and the `*_json` fields must be valid JSON without `\u0000` escapes (jsonb rejects
/// them): the producer guarantees both, and a batch that breaks the rule fails as a
/// whole with a data error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanRecord {
    pub resource: Arc<SpanResource>,
    pub scope: Arc<SpanScope>,
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// 16 lowercase hex digits, or empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    pub kind: i32,
    pub start_time_unix_nano: i64,
    pub end_time_unix_nano: i64,
    pub status_code: i32,
    pub status_message: String,
    /// A JSON object.
    pub attributes_json: String,
    /// A JSON array.
    pub events_json: String,
    /// A JSON array.
    pub links_json: String,
}

impl SpanRecord {
    /// The `timestamp` column (the partition key): the span's start, as exporters set it.
    pub fn timestamp(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_nanos(self.start_time_unix_nano)
    }
}

/// Writes `records` in one COPY, which PostgreSQL runs as one transaction: when this
/// returns `Ok`, every row is committed, and on `Err` none is. Returns the row count.
/// `records` is a slice (of rows or of references to rows) rather than any iterator so
/// the future stays `Send` for callers that build the list in a spawned task.
pub async fn copy_records<R: Borrow<SpanRecord> + Sync>(
    client: &Client,
    records: &[R],
) -> Result<u64, DbError> {
    let mut copy = RowCopy::start(client, "otel_traces", "FORMAT binary", false).await?;
    for r in records {
        let r: &SpanRecord = r.borrow();
        let row = Row {
            timestamp: r.timestamp(),
            trace_id: &r.trace_id,
            span_id: &r.span_id,
            parent_span_id: &r.parent_span_id,
            name: &r.name,
            kind: r.kind,
            start_time_unix_nano: r.start_time_unix_nano,
            end_time_unix_nano: r.end_time_unix_nano,
            service_name: r.resource.service_name.as_deref(),
            service_version: r.resource.service_version.as_deref(),
            service_instance: r.resource.service_instance.as_deref(),
            scope_name: &r.scope.name,
            scope_version: &r.scope.version,
            status_code: r.status_code,
            status_message: &r.status_message,
            attributes: &r.attributes_json,
            resource_attributes: &r.resource.attributes_json,
            events: &r.events_json,
            links: &r.links_json,
            created_at: None,
        };
        copy.push(&row).await?;
    }
    copy.finish().await
}
