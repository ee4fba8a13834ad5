//! Sending span rows with binary COPY, for OTLP ingest and for the workload loader alike.
//!
//! The rows are encoded by `span_row::CopyRows` into large buffers: each COPY data
//! message costs a trip through the connection task, so fewer, larger ones.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::{pin_mut, SinkExt};
use span_row::{column_list, CopyRows, SpanRow};
use tokio_postgres::Client;

use crate::db::DbError;
use crate::resources::{self, ResourceIds};

/// Bytes handed to the connection per COPY data message.
const CHUNK_BYTES: usize = 128 * 1024;

/// Where and how a COPY writes.
#[derive(Debug, Clone, Copy)]
pub struct CopyInto<'a> {
    /// `otel_traces` or one of its partitions or stage tables, named by the caller from
    /// the catalog (it is quoted here, never taken from user input).
    pub table: &'a str,
    /// Rows written already frozen: only for a table created in the client's open
    /// transaction (PostgreSQL refuses otherwise). Nobody else can see such a table
    /// before it commits, and frozen rows spare the first readers setting hint bits on
    /// every page and vacuum a later pass to freeze them.
    pub freeze: bool,
    /// Whether each row brings its `created_at`; without it the column default applies.
    pub with_created_at: bool,
}

/// Writes `rows` (each with its `created_at` exactly when `into.with_created_at`) in one
/// COPY statement, their resources stored once ([`resources::resolve`]); returns the row
/// count. Outside a transaction the COPY commits on its own; callers that must know the
/// rows are durable wrap it (see `copy_records`).
///
/// A slice rather than any iterator: an iterator adapter with a closure over references,
/// held across the awaits, makes callers' futures fail to be `Send` (a higher-ranked
/// bound the compiler cannot prove), and every caller spawns this.
pub async fn copy_rows(
    client: &Client,
    into: CopyInto<'_>,
    rows: &[(&SpanRow, Option<DateTime<Utc>>)],
) -> Result<u64, DbError> {
    let spans: Vec<&SpanRow> = rows.iter().map(|&(row, _)| row).collect();
    let ids = resources::resolve(client, &spans).await?;
    copy_resolved(client, into, rows, &ids).await
}

/// [`copy_rows`] with the rows' resource ids already resolved.
pub(crate) async fn copy_resolved(
    client: &Client,
    into: CopyInto<'_>,
    rows: &[(&SpanRow, Option<DateTime<Utc>>)],
    ids: &ResourceIds,
) -> Result<u64, DbError> {
    let sql = format!(
        "COPY \"{}\" ({}) FROM STDIN (FORMAT binary{})",
        into.table.replace('"', "\"\""),
        column_list(into.with_created_at),
        if into.freeze { ", FREEZE" } else { "" }
    );
    let sink = client.copy_in::<_, Bytes>(sql.as_str()).await?;
    pin_mut!(sink);
    let mut encoded = CopyRows::new(into.with_created_at);
    for (i, &(row, created_at)) in rows.iter().enumerate() {
        // An error here drops the sink unfinished, which aborts the COPY.
        encoded
            .push(row, ids.of_row(i), created_at)
            .map_err(|e| DbError::Encode(e.to_string()))?;
        if encoded.pending() >= CHUNK_BYTES {
            sink.as_mut().send(encoded.take()).await?;
        }
    }
    sink.as_mut().send(encoded.finish()).await?;
    Ok(sink.as_mut().finish().await?)
}
