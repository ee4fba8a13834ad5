//! Writing spans received from outside (OTLP): committed before they are acknowledged.
//!
//! Received spans share their resource and scope with the other spans of the same
//! request ([`SpanRow`] holds them by reference count), and `created_at` is left to the
//! column default: `now()`, the writing transaction's start, which is what the incremental
//! summaries' capture log records as arrival too.

use std::borrow::Borrow;

use tokio_postgres::Client;

pub use span_row::{SpanResource, SpanRow, SpanScope};

use crate::db::DbError;
use crate::ingest_copy::copy_resolved;
pub use crate::ingest_copy::{copy_rows, CopyInto};
use crate::resources::ResourceIds;

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

/// Writes `records` in one COPY inside an explicit transaction: when this returns `Ok`,
/// every row is committed, and on `Err` none is. Returns the row count. The resources are
/// resolved before the transaction ([`crate::resources::resolve`]), so that no lock on
/// a resource row is held while the spans are written.
///
/// Why not a bare COPY: over the extended protocol its implicit transaction commits at the
/// `Sync` that follows the COPY, after the row count (`CommandComplete`) has already reached
/// us. A crash in between lost spans that had been acknowledged. `COMMIT` answers only once
/// the commit is durable.
/// `records` is a slice (of rows or of references to rows) rather than any iterator so
/// the future stays `Send` for callers that build the list in a spawned task.
pub async fn copy_records<R: Borrow<SpanRow> + Sync>(
    client: &Client,
    records: &[R],
) -> Result<u64, DbError> {
    let rows: Vec<&SpanRow> = records.iter().map(Borrow::borrow).collect();
    let ids = crate::resources::resolve(client, &rows).await?;
    client.batch_execute("BEGIN").await?;
    match copy_in_transaction(client, &rows, &ids).await {
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

async fn copy_in_transaction(
    client: &Client,
    records: &[&SpanRow],
    ids: &ResourceIds,
) -> Result<u64, DbError> {
    let into = CopyInto {
        table: "otel_traces",
        freeze: false,
        with_created_at: false,
    };
    let rows: Vec<(&SpanRow, _)> = records.iter().map(|&r| (r, None)).collect();
    copy_resolved(client, into, &rows, ids).await
}
