//! Acknowledged spans that are not in `otel_traces`: the receiver promises that an
//! acknowledged span is committed, so this must be zero.

use chrono::{DateTime, Utc};

use super::ingest::SpanKey;

/// Spans per lookup statement: big enough to be quick, small enough to keep each
/// statement's arrays a few megabytes.
const CHUNK: usize = 20_000;

/// How many of `acked` have no row with their trace and span id. `since` bounds the
/// timestamps searched (every acknowledged span was made after it), so only the day
/// partitions of the run are probed.
pub async fn count(url: &str, acked: &[SpanKey], since: DateTime<Utc>) -> Result<u64, String> {
    let client = store::db::connect(url).await.map_err(|e| e.to_string())?;
    let statement = client
        .prepare(
            "SELECT count(*) FROM unnest($1::text[], $2::text[]) AS a(trace_id, span_id) \
             WHERE NOT EXISTS (SELECT 1 FROM otel_traces o \
                 WHERE o.trace_id = a.trace_id AND o.span_id = a.span_id \
                 AND o.timestamp >= $3)",
        )
        .await
        .map_err(|e| format!("preparing the lost-span check: {e}"))?;
    let mut lost = 0u64;
    for chunk in acked.chunks(CHUNK) {
        let traces: Vec<&str> = chunk.iter().map(|(t, _)| t.as_str()).collect();
        let spans: Vec<&str> = chunk.iter().map(|(_, s)| s.as_str()).collect();
        let n: i64 = client
            .query_one(&statement, &[&traces, &spans, &since])
            .await
            .map_err(|e| format!("checking acknowledged spans: {e}"))?
            .get(0);
        lost += n as u64;
    }
    Ok(lost)
}
