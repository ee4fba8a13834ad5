//! Writing generated spans with binary COPY (`store::ingest::copy_rows`, the encoder OTLP
//! ingest uses too), each with the `created_at` its simulated arrival gives it.

use chrono::{DateTime, Utc};
use store::db::DbError;
use store::ingest::{copy_rows, CopyInto};
use tokio_postgres::Client;
use workload::Span;

/// When each span arrived: the simulated arrival for historical loads, the real time
/// for live inserts.
#[derive(Debug, Clone, Copy)]
pub enum Arrival {
    /// Span time plus its simulated delivery delay.
    Simulated,
    /// This instant.
    At(DateTime<Utc>),
}

/// Writes `spans` into `otel_traces` in one COPY (one transaction); returns the number
/// of rows.
pub async fn copy_spans<'a>(
    client: &Client,
    spans: impl IntoIterator<Item = &'a Span>,
    arrival: Arrival,
) -> Result<u64, DbError> {
    copy_spans_into(client, "otel_traces", spans, arrival).await
}

/// [`copy_spans`] into `table`: `otel_traces` or one of its partitions, named by the
/// caller from the catalog (it is quoted, never taken from user input).
pub async fn copy_spans_into<'a>(
    client: &Client,
    table: &str,
    spans: impl IntoIterator<Item = &'a Span>,
    arrival: Arrival,
) -> Result<u64, DbError> {
    copy(client, table, false, spans, arrival).await
}

/// [`copy_spans_into`] a table created in the client's open transaction, with the rows
/// written already frozen: nobody else can see the table before it commits, and frozen
/// rows spare the first readers setting hint bits on every page (writing each page out
/// again) and vacuum a later pass to freeze them.
pub async fn copy_spans_frozen<'a>(
    client: &Client,
    table: &str,
    spans: impl IntoIterator<Item = &'a Span>,
    arrival: Arrival,
) -> Result<u64, DbError> {
    copy(client, table, true, spans, arrival).await
}

async fn copy<'a>(
    client: &Client,
    table: &str,
    freeze: bool,
    spans: impl IntoIterator<Item = &'a Span>,
    arrival: Arrival,
) -> Result<u64, DbError> {
    let into = CopyInto {
        table,
        freeze,
        with_created_at: true,
    };
    let rows: Vec<_> = spans
        .into_iter()
        .map(|s| {
            let created_at = match arrival {
                Arrival::Simulated => {
                    s.timestamp + chrono::Duration::milliseconds(1 + s.arrival_delay_ms)
                }
                Arrival::At(t) => t,
            };
            (&s.row, Some(created_at))
        })
        .collect();
    copy_rows(client, into, &rows).await
}
