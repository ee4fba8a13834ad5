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

use crate::plan::{Count, Measures, Output, Plan, Source};
use crate::schema::{relation, FieldKind, SUMMARY_COLUMNS};
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

/// Whether `plan`'s on-the-fly relation computes `service_set` for every trace it
/// aggregates, or defers it to the rows shown ([`summary_sql::AGGREGATES_DEFERRING_SERVICE_SET`]):
/// deferred when the relation is a bulk aggregation (of a range, not of one trace or a
/// walk of pages) and nothing but the shown rows reads the column: no filter on the
/// trace's services, no group or count by them. Sort keys never name it. Not on Citus,
/// which refuses the correlated lookup of [`summary_sql::service_set_of`].
pub fn service_set(plan: &Plan) -> ServiceSet {
    let reads_services = |kind: FieldKind| kind == FieldKind::ServiceSet;
    let bulk = plan.source == Source::OnTheFly
        && !plan.distributed
        && !walks_latest_spans(plan)
        && !plan.predicates.iter().any(|p| p.is_trace_id_lookup());
    let filtered = plan.predicates.iter().any(|p| reads_services(p.field.kind));
    let aggregated = match &plan.output {
        Output::Rows { .. } => false,
        Output::Aggregate {
            measures, groups, ..
        } => {
            groups.iter().any(|g| reads_services(g.kind))
                || matches!(measures, Measures::Stats(stats) if stats.iter().any(|s| {
                    matches!(&s.count, Count::Where { field, .. } if reads_services(field.kind))
                }))
        }
    };
    if bulk && !filtered && !aggregated {
        ServiceSet::Deferred
    } else {
        ServiceSet::Aggregated
    }
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

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::{compile, Catalog, PageRequest};

    fn service_set_of(text: &str, catalog: &Catalog) -> ServiceSet {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        let plan = compile(
            text,
            catalog,
            &PageRequest::default(),
            &srql_lang::Limits::default(),
            now,
        )
        .unwrap();
        assert_eq!(plan.source, Source::OnTheFly, "{text}");
        service_set(&plan)
    }

    #[test]
    fn services_are_deferred_only_where_nothing_but_the_shown_rows_reads_them() {
        let one_node = Catalog {
            trace_extents: true,
            ..Catalog::without_summaries()
        };
        let range = "in:otel_trace_summaries time:last_24h";
        for (query, expected) in [
            (format!("{range} root_service_name:a"), ServiceSet::Deferred),
            (
                format!("{range} sort:duration_ms:desc"),
                ServiceSet::Deferred,
            ),
            (
                format!("{range} span.attributes.http.status_code:200"),
                ServiceSet::Deferred,
            ),
            (
                format!(r#"{range} stats:"count() as n by root_service_name""#),
                ServiceSet::Deferred,
            ),
            // Filters on the services read them for every trace.
            (format!("{range} service_name:a"), ServiceSet::Aggregated),
            (format!("{range} !service_name:%a%"), ServiceSet::Aggregated),
            // One trace, or the walk that aggregates only the traces it shows.
            (format!("{range} trace_id:ab"), ServiceSet::Aggregated),
            (range.to_string(), ServiceSet::Aggregated),
        ] {
            assert_eq!(service_set_of(&query, &one_node), expected, "{query}");
        }
        let citus = Catalog {
            distributed: true,
            ..Catalog::without_summaries()
        };
        assert_eq!(
            service_set_of(&format!("{range} root_service_name:a"), &citus),
            ServiceSet::Aggregated
        );
    }
}
