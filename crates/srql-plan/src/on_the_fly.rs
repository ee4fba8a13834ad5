//! The on-the-fly path's ordered shape: a page of traces read in the order of their
//! latest span, aggregating only the traces the page shows.
//!
//! A summary row's `timestamp` is the trace's latest span time, and a trace belongs to a
//! range iff that time does. So, reading spans by `timestamp` through its index, the
//! traces appear in page order at their latest span: a span is its trace's latest when no
//! span of the trace sorts after it. Each such trace is aggregated over all its spans
//! (one `trace_id` index lookup per partition), and the `LIMIT` stops the walk once the
//! page is full. Nothing is assumed about how far apart a trace's spans lie, and the cost
//! follows the page size rather than the spans in the range.
//!
//! It only pays when most traces it meets are shown: a filter would make it aggregate
//! every trace it rejects, one by one, which for a rare value is far slower than the bulk
//! aggregation. So it answers unfiltered pages ordered by `timestamp` (the traces tab as
//! it opens, and its "last N" ranges); everything else aggregates in bulk, over the
//! range widened by the traces' reach where the catalog bounds them
//! ([`crate::trace_reach`]), else over every trace with a span in the range.
//!
//! Sealed days are citus_columnar, which refuses `ctid` scans, so two stored copies of a
//! trace's latest span cannot be told apart: both qualify as latest and give the same
//! row, which [`collapse_copies`] folds into one. A `DISTINCT ON` inside the relation
//! would do it too, but PostgreSQL 15 plans a subquery under an `ORDER BY` for full
//! retrieval and sorts `DISTINCT` input fully; a `GROUP BY` on the page's own level
//! keeps the walk streaming (an incremental sort, presorted on `timestamp`, before it).
//!
//! A trace's aggregate would also visit every sealed day, and on a columnar day a visit
//! that finds nothing still reads the day's chunk-group metadata. When the catalog can
//! bound a trace by its extent ([`crate::trace_extent`]), the aggregate is bounded per
//! walked trace by `srql_trace_extent` called in the `FROM` list: its bounds reach the
//! aggregate as parameters of the nested loop, on which PostgreSQL prunes the day
//! partitions at each rescan, with one call per trace (the two scalar subqueries of
//! `trace_extent.rs` prune too, but call it twice). The `later` probe is left
//! unbounded: it reads a sealed day through its trace_id index, cheaply, and an upper
//! bound there stays a join filter that prunes nothing.

use crate::plan::{Output, Plan, Source};
use crate::schema::{relation, SUMMARY_COLUMNS};
use crate::summary_sql::{self, ServiceSet};

/// Whether `plan` is answered by walking the spans in page order.
pub fn walks_latest_spans(plan: &Plan) -> bool {
    let Output::Rows { page, .. } = &plan.output else {
        return false;
    };
    let mut keys = page.keys.iter().map(|(k, _)| k.name);
    plan.source == Source::OnTheFly
        && plan.predicates.is_empty()
        && plan.spans.is_empty()
        && keys.next() == Some("timestamp")
        // Every page key must be a column of the walked span, so that the order, the
        // range and the cursor apply to the walk itself.
        && keys.all(|k| k == "trace_id")
}

/// The summary relation's body for [`walks_latest_spans`] plans: every trace with the
/// span that is its latest, exposing that span's `timestamp` and `trace_id` so that the
/// outer `WHERE`, `ORDER BY` and `LIMIT` drive the walk. `bounded`: each trace's
/// aggregate reads only the days of its extent ([`Plan::trace_extents`]).
pub fn latest_span_walk(bounded: bool) -> String {
    let spans = relation::SPANS;
    let columns = SUMMARY_COLUMNS
        .iter()
        .map(|c| match c.name {
            "timestamp" | "trace_id" => format!("latest.{}", c.name),
            other => format!("t.{other}"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let (extent, spans_of_trace) = if bounded {
        (
            "\n  CROSS JOIN LATERAL srql_trace_extent(ARRAY[latest.trace_id]) extent",
            "trace_id = latest.trace_id\n    AND timestamp >= extent.lo AND timestamp <= extent.hi",
        )
    } else {
        ("", "trace_id = latest.trace_id")
    };
    // The latest span is the greatest by (timestamp, span_id); the redundant
    // `timestamp >=` lets PostgreSQL skip the partitions before it.
    format!(
        "SELECT {columns}\n  FROM {spans} latest{extent}\n  \
         CROSS JOIN LATERAL ({}) t\n  \
         WHERE NOT EXISTS (\n    SELECT 1 FROM {spans} later\n    \
         WHERE later.trace_id = latest.trace_id\n      \
         AND later.timestamp >= latest.timestamp\n      \
         AND (later.timestamp, later.span_id) > (latest.timestamp, latest.span_id)\n  )",
        summary_sql::aggregate_spans(spans, Some(spans_of_trace), ServiceSet::Aggregated)
    )
}

/// The `GROUP BY` that folds the identical rows of a latest span stored twice: every
/// summary column, so the rows it folds are equal and nothing needs aggregating.
pub fn collapse_copies() -> String {
    let columns = SUMMARY_COLUMNS
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ");
    format!("\nGROUP BY {columns}")
}
