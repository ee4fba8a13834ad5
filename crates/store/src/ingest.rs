//! Binary COPY of spans received from outside (OTLP), beside `spans.rs`, which writes the
//! generated workload.
//!
//! Received spans share their resource and scope with the other spans of the same
//! request, so those parts are reference-counted instead of copied per span, and
//! `created_at` is left to the column default: `now()`, the writing transaction's start,
//! which is what the incremental summaries' capture log records as arrival too.

use std::borrow::Borrow;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Client;

use crate::db::DbError;

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

const COPY_SQL: &str =
    "COPY otel_traces (timestamp, trace_id, span_id, parent_span_id, name, kind, \
    start_time_unix_nano, end_time_unix_nano, service_name, service_version, service_instance, \
    scope_name, scope_version, status_code, status_message, attributes, resource_attributes, \
    events, links) FROM STDIN (FORMAT binary)";

const TYPES: &[Type] = &[
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT4,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT4,
    Type::TEXT,
    Type::JSONB,
    Type::JSONB,
    Type::JSONB,
    Type::JSONB,
];

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

/// Writes `records` in one COPY inside an explicit transaction: when this returns `Ok`,
/// every row is committed, and on `Err` none is. Returns the row count.
///
/// Why not a bare COPY: over the extended protocol its implicit transaction commits at the
/// `Sync` that follows the COPY, after the row count (`CommandComplete`) has already reached
/// us. A crash in between lost spans that had been acknowledged. `COMMIT` answers only once
/// the commit is durable.
/// `records` is a slice (of rows or of references to rows) rather than any iterator so
/// the future stays `Send` for callers that build the list in a spawned task.
pub async fn copy_records<R: Borrow<SpanRecord> + Sync>(
    client: &Client,
    records: &[R],
) -> Result<u64, DbError> {
    client.batch_execute("BEGIN").await?;
    match copy_in_transaction(client, records).await {
        Ok(rows) => {
            client.batch_execute("COMMIT").await?;
            Ok(rows)
        }
        Err(e) => {
            // The connection goes back to the pool (or is retried for one request at a
            // time): leave it outside the failed transaction. A broken connection fails
            // here too, and the caller's error is the COPY's.
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

async fn copy_in_transaction<R: Borrow<SpanRecord> + Sync>(
    client: &Client,
    records: &[R],
) -> Result<u64, DbError> {
    let sink = client.copy_in(COPY_SQL).await?;
    let writer = BinaryCopyInWriter::new(sink, TYPES);
    pin_mut!(writer);
    for r in records {
        let r: &SpanRecord = r.borrow();
        let timestamp = r.timestamp();
        let row: [&(dyn ToSql + Sync); 19] = [
            &timestamp,
            &r.trace_id,
            &r.span_id,
            &r.parent_span_id,
            &r.name,
            &r.kind,
            &r.start_time_unix_nano,
            &r.end_time_unix_nano,
            &r.resource.service_name,
            &r.resource.service_version,
            &r.resource.service_instance,
            &r.scope.name,
            &r.scope.version,
            &r.status_code,
            &r.status_message,
            &RawJson(&r.attributes_json),
            &RawJson(&r.resource.attributes_json),
            &RawJson(&r.events_json),
            &RawJson(&r.links_json),
        ];
        writer.as_mut().write(&row).await?;
    }
    Ok(writer.finish().await?)
}

/// JSON text that is already valid, sent as `jsonb` without parsing it again. (The same
/// as the private one in `spans.rs`, which is not ours to change.)
#[derive(Debug)]
struct RawJson<'a>(&'a str);

impl ToSql for RawJson<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        if *ty == Type::JSONB {
            // jsonb's binary format: a version byte, then the JSON text.
            out.extend_from_slice(&[1]);
        }
        out.extend_from_slice(self.0.as_bytes());
        Ok(tokio_postgres::types::IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }

    tokio_postgres::types::to_sql_checked!();
}
