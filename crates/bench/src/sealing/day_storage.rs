//! Where the spans' bytes go, day partition by day partition: sealed days (table and
//! indexes) apart from heap days (table and each index kind), each per million of its own
//! spans. The headline "all days sealed but the newest two" mixes the two at a ratio set
//! by the hour the data was loaded (the newest day is partial), and a heap span weighs
//! ten times a sealed one, so the split is what makes two runs comparable.

use std::collections::BTreeMap;

use crate::summaries::storage::per_million;

/// The workload covers this many hours ending when it is loaded.
const RANGE_HOURS: f64 = 7.0 * 24.0;

/// One storage kind's days summed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Days {
    pub days: usize,
    pub spans: i64,
    pub table_bytes: i64,
    /// By index kind: the index name less its partition's name (`trace_id_idx`, ...).
    pub indexes: BTreeMap<String, i64>,
}

impl Days {
    pub fn index_bytes(&self) -> i64 {
        self.indexes.values().sum()
    }

    pub fn bytes(&self) -> i64 {
        self.table_bytes + self.index_bytes()
    }
}

/// Sealed (columnar) and heap day partitions; the default partition counts as heap.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Breakdown {
    pub sealed: Days,
    pub heap: Days,
    /// `srql_resources` (table and indexes): the resources the spans of both kinds refer
    /// to, stored once; spread over all spans.
    pub resources_bytes: i64,
}

impl Breakdown {
    pub fn spans(&self) -> i64 {
        self.sealed.spans + self.heap.spans
    }

    pub fn bytes(&self) -> i64 {
        self.sealed.bytes() + self.heap.bytes() + self.resources_bytes
    }

    /// The heap days' share of the spans, 0 to 1.
    pub fn heap_share(&self) -> f64 {
        if self.spans() == 0 {
            return 0.0;
        }
        self.heap.spans as f64 / self.spans() as f64
    }

    /// Bytes per million spans of the whole table if the heap days held `heap_share` of
    /// the spans, each kind at the per-span cost measured here.
    pub fn per_million_at(&self, heap_share: f64) -> f64 {
        let heap = per_million(self.heap.bytes(), self.heap.spans);
        let sealed = per_million(self.sealed.bytes(), self.sealed.spans);
        let resources = per_million(self.resources_bytes, self.spans());
        heap_share * heap + (1.0 - heap_share) * sealed + resources
    }
}

/// The heap days' share of the spans when the newest two days stay heap and the workload
/// (spread evenly over the 7 days before it is loaded) was loaded `hours_into_day` hours
/// after midnight UTC: yesterday whole and today so far.
pub fn heap_share_at_hour(hours_into_day: f64) -> f64 {
    (24.0 + hours_into_day.clamp(0.0, 24.0)) / RANGE_HOURS
}

/// Reads the breakdown from the catalog; spans are counted per partition.
pub async fn measure(client: &tokio_postgres::Client) -> Result<Breakdown, String> {
    let err = |e: tokio_postgres::Error| format!("measuring storage per day: {e}");
    let parts = client
        .query(
            "SELECT c.relname::text, a.amname = 'columnar', pg_table_size(c.oid)
             FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid
             JOIN pg_am a ON a.oid = c.relam
             WHERE i.inhparent = 'otel_traces'::regclass",
            &[],
        )
        .await
        .map_err(err)?;
    let indexes = client
        .query(
            "SELECT c.relname::text, ic.relname::text, pg_relation_size(ic.oid)
             FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid
             JOIN pg_index x ON x.indrelid = c.oid
             JOIN pg_class ic ON ic.oid = x.indexrelid
             WHERE i.inhparent = 'otel_traces'::regclass",
            &[],
        )
        .await
        .map_err(err)?;
    let mut out = Breakdown {
        resources_bytes: client
            .query_one("SELECT pg_total_relation_size('srql_resources')", &[])
            .await
            .map_err(err)?
            .get(0),
        ..Breakdown::default()
    };
    let mut sealed_parts = BTreeMap::new();
    for r in &parts {
        let (name, sealed, table): (String, bool, i64) = (r.get(0), r.get(1), r.get(2));
        let days = if sealed {
            &mut out.sealed
        } else {
            &mut out.heap
        };
        days.days += 1;
        days.table_bytes += table;
        // One count per partition: `tableoid` cannot be read from a columnar scan.
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        let count: i64 = client
            .query_one(&format!("SELECT count(*) FROM {quoted}"), &[])
            .await
            .map_err(err)?
            .get(0);
        days.spans += count;
        sealed_parts.insert(name, sealed);
    }
    for r in &indexes {
        let (part, index, bytes): (String, String, i64) = (r.get(0), r.get(1), r.get(2));
        let kind = index
            .strip_prefix(&format!("{part}_"))
            .unwrap_or(&index)
            .to_string();
        let days = if sealed_parts.get(&part) == Some(&true) {
            &mut out.sealed
        } else {
            &mut out.heap
        };
        *days.indexes.entry(kind).or_default() += bytes;
    }
    Ok(out)
}

fn mib(bytes: i64) -> f64 {
    bytes as f64 / 1_048_576.0
}

fn per_m(bytes: i64, spans: i64) -> f64 {
    per_million(bytes, spans) / 1_048_576.0
}

/// A Markdown table: the sealed days, then the heap days, each with its index kinds.
pub fn table(b: &Breakdown) -> Vec<String> {
    let mut lines = vec![
        "| days | spans | table | indexes | per 1M of their spans: table + indexes = total |"
            .to_string(),
        "|---|---|---|---|---|".to_string(),
    ];
    for (name, d) in [("sealed", &b.sealed), ("heap", &b.heap)] {
        if d.days == 0 {
            continue;
        }
        let indexes = d
            .indexes
            .iter()
            .map(|(kind, bytes)| {
                format!(
                    "{kind} {:.1} ({:.1}/M)",
                    mib(*bytes),
                    per_m(*bytes, d.spans)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        lines.push(format!(
            "| {name} ({} partitions) | {} | {:.1} MiB | {:.1} MiB{} | {:.1} + {:.1} = **{:.1} MiB** |",
            d.days,
            d.spans,
            mib(d.table_bytes),
            mib(d.index_bytes()),
            if indexes.is_empty() {
                String::new()
            } else {
                format!(": {indexes}")
            },
            per_m(d.table_bytes, d.spans),
            per_m(d.index_bytes(), d.spans),
            per_m(d.bytes(), d.spans),
        ));
    }
    lines.push(format!(
        "| resources (`srql_resources`, stored once) | | | | {:.2} MiB: {:.2} per 1M spans |",
        mib(b.resources_bytes),
        per_m(b.resources_bytes, b.spans()),
    ));
    lines
}

/// The heap share, and what the total per million would be at other hours of the load.
pub fn mix(b: &Breakdown) -> Vec<String> {
    let mut lines = Vec::new();
    let share = b.heap_share();
    let heap_bytes_share = if b.bytes() > 0 {
        b.heap.bytes() as f64 / b.bytes() as f64
    } else {
        0.0
    };
    lines.push(format!(
        "heap days hold {:.1}% of the spans and {:.1}% of the bytes; total {:.1} MiB per 1M spans",
        100.0 * share,
        100.0 * heap_bytes_share,
        per_m(b.bytes(), b.spans()),
    ));
    let (early, late) = (heap_share_at_hour(0.0), heap_share_at_hour(24.0));
    lines.push(format!(
        "the hour of the load sets the heap share (newest two days heap, 7 days of data): \
         loaded just after 00:00 UTC {:.1}% -> {:.1} MiB/M; at 12:00 {:.1}% -> {:.1} MiB/M; \
         just before 24:00 {:.1}% -> {:.1} MiB/M (these per-span costs)",
        100.0 * early,
        b.per_million_at(early) / 1_048_576.0,
        100.0 * heap_share_at_hour(12.0),
        b.per_million_at(heap_share_at_hour(12.0)) / 1_048_576.0,
        100.0 * late,
        b.per_million_at(late) / 1_048_576.0,
    ));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heap_share_runs_from_one_day_to_two_of_seven() {
        assert!((heap_share_at_hour(0.0) - 1.0 / 7.0).abs() < 1e-9);
        assert!((heap_share_at_hour(24.0) - 2.0 / 7.0).abs() < 1e-9);
        assert!((heap_share_at_hour(30.0) - 2.0 / 7.0).abs() < 1e-9);
    }

    #[test]
    fn the_total_mixes_the_two_kinds_by_their_spans() {
        let b = Breakdown {
            sealed: Days {
                days: 6,
                spans: 800,
                table_bytes: 800 * 50,
                indexes: BTreeMap::new(),
            },
            heap: Days {
                days: 2,
                spans: 200,
                table_bytes: 200 * 600,
                indexes: BTreeMap::from([("trace_id_idx".to_string(), 200 * 100)]),
            },
            resources_bytes: 1000,
        };
        assert!((b.heap_share() - 0.2).abs() < 1e-9);
        let measured = per_million(b.bytes(), b.spans());
        assert!((b.per_million_at(0.2) - measured).abs() < 1e-3);
        // The resources, 1 byte a span here, count at any share.
        assert!((b.per_million_at(0.0) - 51e6).abs() < 1e-3);
    }
}
