//! Phase 3: bytes on disk for spans and for their summaries.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Storage {
    /// What `otel_trace_summaries` is in the database measured: `materialized view` or
    /// `table` (incremental mode), as PostgreSQL says, not as the benchmark meant.
    pub summaries_relation: String,
    pub spans: i64,
    /// Summary rows: traces whose latest span is inside the summary window.
    pub traces: i64,
    /// Day partitions of `otel_traces` holding data or not (the default one included).
    pub partitions: i64,
    /// Heap (and TOAST) of every partition.
    pub spans_table_bytes: i64,
    /// The three span indexes, summed over partitions.
    pub spans_index_bytes: i64,
    pub summaries_table_bytes: i64,
    pub summaries_index_bytes: i64,
}

impl Storage {
    pub fn spans_bytes(&self) -> i64 {
        self.spans_table_bytes + self.spans_index_bytes
    }

    pub fn summaries_bytes(&self) -> i64 {
        self.summaries_table_bytes + self.summaries_index_bytes
    }
}

/// Bytes per million of `count`: what a million spans (or traces) cost.
pub fn per_million(bytes: i64, count: i64) -> f64 {
    if count <= 0 {
        return 0.0;
    }
    bytes as f64 * 1e6 / count as f64
}

pub async fn measure(url: &str) -> Result<Storage, String> {
    let client = store::db::connect(url).await.map_err(|e| e.to_string())?;
    // otel_traces itself is only a partitioned parent with no storage: sum its partitions,
    // and the resources its rows refer to (stored once, migration 0032).
    let row = client
        .query_one(
            "SELECT count(*),
                    coalesce(sum(pg_table_size(i.inhrelid)), 0)::bigint
                        + pg_table_size('srql_resources'),
                    coalesce(sum(pg_indexes_size(i.inhrelid)), 0)::bigint
                        + pg_indexes_size('srql_resources'),
                    (SELECT count(*) FROM otel_traces),
                    (SELECT count(*) FROM otel_trace_summaries),
                    pg_table_size('otel_trace_summaries'),
                    pg_indexes_size('otel_trace_summaries'),
                    (SELECT CASE c.relkind WHEN 'm' THEN 'materialized view'
                                           WHEN 'r' THEN 'table' ELSE c.relkind::text END
                     FROM pg_class c WHERE c.oid = 'otel_trace_summaries'::regclass)
             FROM pg_inherits i WHERE i.inhparent = 'otel_traces'::regclass",
            &[],
        )
        .await
        .map_err(|e| format!("measuring storage: {e}"))?;
    Ok(Storage {
        partitions: row.get(0),
        spans_table_bytes: row.get(1),
        spans_index_bytes: row.get(2),
        spans: row.get(3),
        traces: row.get(4),
        summaries_table_bytes: row.get(5),
        summaries_index_bytes: row.get(6),
        summaries_relation: row.get(7),
    })
}
