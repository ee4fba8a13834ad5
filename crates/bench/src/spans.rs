//! Writing spans with binary COPY, the fastest way into PostgreSQL.
//!
//! Rows are encoded here, column by column, into large buffers: the columns and their
//! types are fixed, so the generic path (a type check and a `dyn ToSql` call per value,
//! and a message to the connection task every 4 KiB) only cost CPU that the bulk load,
//! which shares the machine with PostgreSQL, needs for PostgreSQL.

use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures_util::{pin_mut, SinkExt};
use store::db::DbError;
use tokio_postgres::Client;
use workload::Span;

/// The columns of `otel_traces` in the order [`CopyRows::push`] writes them.
const COLUMNS: &str = "timestamp, trace_id, span_id, parent_span_id, name, kind, \
    start_time_unix_nano, end_time_unix_nano, service_name, service_version, service_instance, \
    scope_name, scope_version, status_code, status_message, attributes, resource_attributes, \
    events, links, created_at";
const COLUMN_COUNT: i16 = 20;

/// Bytes handed to the connection per COPY data message: each message costs a trip
/// through the connection task, so fewer, larger ones.
const CHUNK_BYTES: usize = 128 * 1024;

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
    copy(client, table, "FORMAT binary", spans, arrival).await
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
    copy(client, table, "FORMAT binary, FREEZE", spans, arrival).await
}

async fn copy<'a>(
    client: &Client,
    table: &str,
    options: &str,
    spans: impl IntoIterator<Item = &'a Span>,
    arrival: Arrival,
) -> Result<u64, DbError> {
    let sql = format!(
        "COPY \"{}\" ({COLUMNS}) FROM STDIN ({options})",
        table.replace('"', "\"\"")
    );
    let sink = client.copy_in::<_, Bytes>(sql.as_str()).await?;
    pin_mut!(sink);
    let mut rows = CopyRows::new();
    for s in spans {
        let created_at = match arrival {
            Arrival::Simulated => {
                s.timestamp + chrono::Duration::milliseconds(1 + s.arrival_delay_ms)
            }
            Arrival::At(t) => t,
        };
        // An error here drops the sink unfinished, which aborts the COPY.
        rows.push(s, created_at)?;
        if rows.buf.len() >= CHUNK_BYTES {
            sink.as_mut().send(rows.buf.split().freeze()).await?;
        }
    }
    sink.as_mut().send(rows.finish()).await?;
    Ok(sink.as_mut().finish().await?)
}

/// PostgreSQL's binary COPY format (the `COPY` reference, "Binary Format"): a header,
/// then per row a field count and per field a length and the value in the type's binary
/// send format.
struct CopyRows {
    buf: BytesMut,
}

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 00:00:00 UTC).
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

/// Largest row accepted: PostgreSQL stores at most 1 GiB in a field.
const MAX_ROW_BYTES: usize = 1 << 30;

impl CopyRows {
    fn new() -> Self {
        let mut buf = BytesMut::with_capacity(CHUNK_BYTES + 4096);
        buf.put_slice(b"PGCOPY\n\xff\r\n\0");
        buf.put_i32(0); // flags: no OIDs
        buf.put_i32(0); // no header extension
        Self { buf }
    }

    fn push(&mut self, s: &Span, created_at: DateTime<Utc>) -> Result<(), DbError> {
        let text_bytes = [
            &s.trace_id,
            &s.span_id,
            &s.parent_span_id,
            &s.name,
            &s.service_name,
            &s.service_version,
            &s.service_instance,
            &s.scope_name,
            &s.scope_version,
            &s.status_message,
            &s.attributes,
            &s.resource_attributes,
            &s.events,
            &s.links,
        ]
        .iter()
        .map(|v| v.len())
        .sum::<usize>();
        // Bounding the whole row bounds every length written below, and the message
        // that carries the row.
        if text_bytes >= MAX_ROW_BYTES {
            return Err(DbError::Encode(format!(
                "span {}/{} holds {text_bytes} bytes of text, more than one row may",
                s.trace_id, s.span_id
            )));
        }
        self.buf.put_i16(COLUMN_COUNT);
        self.timestamptz(s.timestamp);
        self.text(&s.trace_id);
        self.text(&s.span_id);
        self.text(&s.parent_span_id);
        self.text(&s.name);
        self.int4(s.kind);
        self.int8(s.start_time_unix_nano);
        self.int8(s.end_time_unix_nano);
        self.text(&s.service_name);
        self.text(&s.service_version);
        self.text(&s.service_instance);
        self.text(&s.scope_name);
        self.text(&s.scope_version);
        self.int4(s.status_code);
        self.text(&s.status_message);
        self.jsonb(&s.attributes);
        self.jsonb(&s.resource_attributes);
        self.jsonb(&s.events);
        self.jsonb(&s.links);
        self.timestamptz(created_at);
        Ok(())
    }

    /// The rest of the stream, with the end-of-data marker.
    fn finish(mut self) -> Bytes {
        self.buf.put_i16(-1);
        self.buf.freeze()
    }

    /// Lengths fit: `push` refuses rows of `MAX_ROW_BYTES` and more.
    fn len(&mut self, n: usize) {
        self.buf.put_i32(n as i32);
    }

    fn text(&mut self, v: &str) {
        self.len(v.len());
        self.buf.put_slice(v.as_bytes());
    }

    /// The generator's JSON is valid already; jsonb's binary format is a version byte
    /// followed by the JSON text, which the server parses once.
    fn jsonb(&mut self, v: &str) {
        self.len(v.len() + 1);
        self.buf.put_u8(1);
        self.buf.put_slice(v.as_bytes());
    }

    fn int4(&mut self, v: i32) {
        self.buf.put_i32(4);
        self.buf.put_i32(v);
    }

    fn int8(&mut self, v: i64) {
        self.buf.put_i32(8);
        self.buf.put_i64(v);
    }

    fn timestamptz(&mut self, t: DateTime<Utc>) {
        self.buf.put_i32(8);
        self.buf
            .put_i64(t.timestamp_micros() - PG_EPOCH_UNIX_MICROS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_count_from_the_postgres_epoch() {
        let mut rows = CopyRows::new();
        let header = rows.buf.len();
        let t = DateTime::parse_from_rfc3339("2000-01-01T00:00:01.000002Z")
            .unwrap()
            .with_timezone(&Utc);
        rows.timestamptz(t);
        assert_eq!(
            &rows.buf[header..],
            &[0, 0, 0, 8, 0, 0, 0, 0, 0, 0x0f, 0x42, 0x42]
        );
    }

    #[test]
    fn fields_are_length_prefixed() {
        let mut rows = CopyRows::new();
        assert_eq!(&rows.buf[..11], b"PGCOPY\n\xff\r\n\0");
        let header = rows.buf.len();
        rows.text("ab");
        rows.jsonb("{}");
        rows.int4(-1);
        assert_eq!(
            &rows.buf[header..],
            &[
                0, 0, 0, 2, b'a', b'b', 0, 0, 0, 3, 1, b'{', b'}', 0, 0, 0, 4, 0xff, 0xff, 0xff,
                0xff
            ]
        );
        let end = rows.finish();
        assert_eq!(&end[end.len() - 2..], &[0xff, 0xff]);
    }
}
