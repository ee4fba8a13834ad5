//! PostgreSQL's binary COPY format (the `COPY` reference, "Binary Format"): a header, then
//! per row a field count and per field a length and the value in the type's binary send
//! format, then an end marker.
//!
//! Written by hand for the fixed columns of [`crate::COLUMNS`] rather than through a
//! driver's generic writer (a type check and a `dyn` call per value): on the same
//! generated rows this encodes about 1.7 times as fast (bench-results/issue12-row.md), CPU
//! that bulk loads and OTLP ingest share with PostgreSQL on the same machine.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, Utc};

use crate::SpanRow;

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 00:00:00 UTC).
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

/// Largest row accepted: PostgreSQL stores at most 1 GiB in a field, and bounding the
/// whole row bounds every length written and the message that carries the row.
const MAX_ROW_BYTES: usize = 1 << 30;

/// Why a row could not be encoded; the COPY it belonged to must be abandoned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError(String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodeError {}

/// Encoded rows of one COPY, taken out in chunks with [`CopyRows::take`] and ended with
/// [`CopyRows::finish`].
#[derive(Debug)]
pub struct CopyRows {
    buf: BytesMut,
    with_created_at: bool,
}

impl CopyRows {
    /// Rows for a COPY naming [`crate::column_list`]`(with_created_at)`.
    pub fn new(with_created_at: bool) -> Self {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        buf.put_slice(b"PGCOPY\n\xff\r\n\0");
        buf.put_i32(0); // flags: no OIDs
        buf.put_i32(0); // no header extension
        Self {
            buf,
            with_created_at,
        }
    }

    /// Appends one row. `resource_id` is the id of the row's resource in
    /// `srql_resources`; `created_at` must be given exactly when the COPY names the column.
    pub fn push(
        &mut self,
        s: &SpanRow,
        resource_id: i64,
        created_at: Option<DateTime<Utc>>,
    ) -> Result<(), EncodeError> {
        if created_at.is_some() != self.with_created_at {
            return Err(EncodeError(format!(
                "span {}/{}: created_at {} but the COPY {} the column",
                s.trace_id,
                s.span_id,
                if created_at.is_some() {
                    "given"
                } else {
                    "missing"
                },
                if self.with_created_at {
                    "names"
                } else {
                    "does not name"
                },
            )));
        }
        let text_bytes = [
            &s.trace_id,
            &s.span_id,
            &s.parent_span_id,
            &s.name,
            &s.scope.name,
            &s.scope.version,
            &s.status_message,
            &s.attributes,
            &s.events,
            &s.links,
        ]
        .iter()
        .map(|v| v.len())
        .sum::<usize>()
            + s.resource.service_name.as_deref().map_or(0, str::len);
        if text_bytes >= MAX_ROW_BYTES {
            return Err(EncodeError(format!(
                "span {}/{} holds {text_bytes} bytes of text, more than one row may",
                s.trace_id, s.span_id
            )));
        }
        // A handful of columns: the count fits.
        self.buf
            .put_i16(crate::columns::column_count(self.with_created_at) as i16);
        self.timestamptz(s.timestamp);
        self.text(&s.trace_id);
        self.text(&s.span_id);
        self.text(&s.parent_span_id);
        self.text(&s.name);
        self.int4(s.kind);
        self.int8(s.start_time_unix_nano);
        self.int8(s.end_time_unix_nano);
        self.nullable_text(s.resource.service_name.as_deref());
        self.text(&s.scope.name);
        self.text(&s.scope.version);
        self.int4(s.status_code);
        self.text(&s.status_message);
        self.jsonb(&s.attributes);
        self.jsonb(&s.events);
        self.jsonb(&s.links);
        self.int8(resource_id);
        if let Some(t) = created_at {
            self.timestamptz(t);
        }
        Ok(())
    }

    /// Bytes encoded so far and not yet taken.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The bytes encoded so far, to send as one COPY data message.
    pub fn take(&mut self) -> Bytes {
        self.buf.split().freeze()
    }

    /// The rest of the stream, with the end-of-data marker.
    pub fn finish(mut self) -> Bytes {
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

    fn nullable_text(&mut self, v: Option<&str>) {
        match v {
            Some(v) => self.text(v),
            None => self.buf.put_i32(-1),
        }
    }

    /// The JSON is valid already; jsonb's binary format is a version byte followed by
    /// the JSON text, which the server parses once.
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
    use crate::{ColumnType, COLUMNS};

    const HEADER: usize = 19;

    #[test]
    fn timestamps_count_from_the_postgres_epoch() {
        let mut rows = CopyRows::new(false);
        let t = DateTime::parse_from_rfc3339("2000-01-01T00:00:01.000002Z")
            .unwrap()
            .with_timezone(&Utc);
        rows.timestamptz(t);
        assert_eq!(
            &rows.buf[HEADER..],
            &[0, 0, 0, 8, 0, 0, 0, 0, 0, 0x0f, 0x42, 0x42]
        );
    }

    #[test]
    fn fields_are_length_prefixed() {
        let mut rows = CopyRows::new(false);
        assert_eq!(&rows.buf[..11], b"PGCOPY\n\xff\r\n\0");
        assert_eq!(rows.pending(), HEADER);
        rows.text("ab");
        rows.jsonb("{}");
        rows.int4(-1);
        rows.nullable_text(None);
        assert_eq!(
            &rows.buf[HEADER..],
            &[
                0, 0, 0, 2, b'a', b'b', 0, 0, 0, 3, 1, b'{', b'}', 0, 0, 0, 4, 0xff, 0xff, 0xff,
                0xff, 0xff, 0xff, 0xff, 0xff
            ]
        );
        let end = rows.finish();
        assert_eq!(&end[end.len() - 2..], &[0xff, 0xff]);
    }

    /// Walks one encoded row field by field: the widths must be those of `COLUMNS`.
    fn field_lengths(bytes: &[u8]) -> Vec<i32> {
        let count = i16::from_be_bytes([bytes[0], bytes[1]]);
        let mut at = 2;
        (0..count)
            .map(|_| {
                let n = i32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
                at += 4 + n.max(0) as usize;
                n
            })
            .collect()
    }

    #[test]
    fn a_row_follows_the_column_list() {
        let row = SpanRow {
            attributes: "{}".into(),
            events: "[]".into(),
            links: "[]".into(),
            resource: std::sync::Arc::new(crate::SpanResource {
                attributes: "{}".into(),
                ..Default::default()
            }),
            ..SpanRow::default()
        };
        for with_created_at in [false, true] {
            let mut rows = CopyRows::new(with_created_at);
            rows.push(&row, 7, with_created_at.then(Utc::now)).unwrap();
            let lengths = field_lengths(&rows.take()[HEADER..]);
            let columns = &COLUMNS[..lengths.len()];
            assert_eq!(lengths.len(), if with_created_at { 18 } else { 17 });
            for (c, n) in columns.iter().zip(lengths) {
                let want = match (c.ty, c.name) {
                    (ColumnType::Int4, _) => 4,
                    (ColumnType::Int8 | ColumnType::Timestamptz, _) => 8,
                    (_, "service_name") => -1,
                    (ColumnType::Jsonb, _) => 3,
                    (ColumnType::Text, _) => 0,
                };
                assert_eq!(n, want, "column {}", c.name);
            }
        }
    }

    #[test]
    fn created_at_must_match_the_column_list() {
        let row = SpanRow::default();
        assert!(CopyRows::new(true).push(&row, 1, None).is_err());
        assert!(CopyRows::new(false)
            .push(&row, 1, Some(Utc::now()))
            .is_err());
    }
}
