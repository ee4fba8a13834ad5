//! Encodes the same generated rows with both binary COPY encoders and reports rows/s.
use std::time::Instant;
use bytes::{BufMut, BytesMut};
use chrono::{DateTime, Duration, Utc};
use postgres_types::{IsNull, ToSql, Type};
use workload::{Generator, Span, WorkloadConfig};
use span_row::CopyRows;

const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

fn hand(buf: &mut BytesMut, s: &Span, created_at: Option<DateTime<Utc>>) {
    fn text(b: &mut BytesMut, v: &str) { b.put_i32(v.len() as i32); b.put_slice(v.as_bytes()); }
    fn jsonb(b: &mut BytesMut, v: &str) { b.put_i32(v.len() as i32 + 1); b.put_u8(1); b.put_slice(v.as_bytes()); }
    fn ts(b: &mut BytesMut, t: DateTime<Utc>) { b.put_i32(8); b.put_i64(t.timestamp_micros() - PG_EPOCH_UNIX_MICROS); }
    buf.put_i16(if created_at.is_some() { 20 } else { 19 });
    ts(buf, s.timestamp);
    text(buf, &s.trace_id); text(buf, &s.span_id); text(buf, &s.parent_span_id); text(buf, &s.name);
    buf.put_i32(4); buf.put_i32(s.kind);
    buf.put_i32(8); buf.put_i64(s.start_time_unix_nano);
    buf.put_i32(8); buf.put_i64(s.end_time_unix_nano);
    text(buf, s.resource.service_name.as_deref().unwrap()); text(buf, s.resource.service_version.as_deref().unwrap()); text(buf, s.resource.service_instance.as_deref().unwrap());
    text(buf, &s.scope.name); text(buf, &s.scope.version);
    buf.put_i32(4); buf.put_i32(s.status_code);
    text(buf, &s.status_message);
    jsonb(buf, &s.attributes); jsonb(buf, &s.resource.attributes); jsonb(buf, &s.events); jsonb(buf, &s.links);
    if let Some(t) = created_at { ts(buf, t); }
}

#[derive(Debug)]
struct RawJson<'a>(&'a str);
impl ToSql for RawJson<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        if *ty == Type::JSONB { out.extend_from_slice(&[1]); }
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool { *ty == Type::JSONB || *ty == Type::JSON }
    postgres_types::to_sql_checked!();
}

const TYPES: &[Type] = &[Type::TIMESTAMPTZ, Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT, Type::INT4, Type::INT8, Type::INT8,
    Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT, Type::INT4, Type::TEXT, Type::JSONB, Type::JSONB, Type::JSONB, Type::JSONB];

/// BinaryCopyInWriter::write_raw's encoding, minus its channel send every 4 KiB.
fn generic(buf: &mut BytesMut, s: &Span) {
    let (svc, ver, inst) = (&s.resource.service_name, &s.resource.service_version, &s.resource.service_instance);
    let (a, r, e, l) = (RawJson(&s.attributes), RawJson(&s.resource.attributes), RawJson(&s.events), RawJson(&s.links));
    let row: [&(dyn ToSql + Sync); 19] = [&s.timestamp, &s.trace_id, &s.span_id, &s.parent_span_id, &s.name, &s.kind,
        &s.start_time_unix_nano, &s.end_time_unix_nano, &svc, &ver, &inst, &s.scope.name, &s.scope.version,
        &s.status_code, &s.status_message, &a, &r, &e, &l];
    buf.put_i16(19);
    for (v, ty) in row.iter().zip(TYPES) {
        let idx = buf.len();
        buf.put_i32(0);
        let len = match v.to_sql_checked(ty, buf).unwrap() { IsNull::Yes => -1, IsNull::No => (buf.len() - idx - 4) as i32 };
        buf[idx..idx + 4].copy_from_slice(&len.to_be_bytes());
    }
}

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let end = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap().with_timezone(&Utc);
    let spans: Vec<Span> = Generator::new(WorkloadConfig::for_spans(1, n, end - Duration::days(7), end)).flat_map(|t| t.spans).collect();

    for round in 0..3 {
        // "shared" is span_row::CopyRows, the one encoder after the change.
        let mut shared = CopyRows::new(false);
        let mut shared_total = 0usize;
        let t = Instant::now();
        for s in &spans {
            shared.push(&s.row, None).unwrap();
            if shared.pending() >= 128 * 1024 { shared_total += shared.take().len(); }
        }
        shared_total += shared.finish().len();
        let secs = t.elapsed().as_secs_f64();
        println!("round {round} {:16} {} rows {secs:.3} s {:.0} rows/s {:.0} MB/s", "shared", spans.len(), spans.len() as f64 / secs, shared_total as f64 / secs / 1e6);
        for (name, f) in [("hand", 0), ("generic", 1), ("hand+created_at", 2)] {
            let mut buf = BytesMut::with_capacity(256 * 1024);
            let mut total = 0usize;
            let t = Instant::now();
            for s in &spans {
                match f { 0 => hand(&mut buf, s, None), 1 => generic(&mut buf, s), _ => hand(&mut buf, s, Some(s.timestamp)) }
                if buf.len() >= 128 * 1024 { total += buf.len(); buf.clear(); }
            }
            total += buf.len();
            let secs = t.elapsed().as_secs_f64();
            println!("round {round} {name:16} {} rows {secs:.3} s {:.0} rows/s {:.0} MB/s", spans.len(), spans.len() as f64 / secs, total as f64 / secs / 1e6);
        }
    }
}
