//! The planner's view of the summaries ([`srql_plan::Catalog`]), read from the database.

use srql_plan::{Catalog, SummaryKind, SummaryState};
use tokio_postgres::GenericClient;

use crate::db::DbError;
use crate::refresh_runs::last_runs;
use crate::settings::stored_config;

pub async fn catalog(client: &impl GenericClient) -> Result<Catalog, DbError> {
    let row = client
        .query_one(
            "SELECT c.relkind::text, c.relispopulated, (
                        to_regprocedure('srql_trace_extent(text[])') IS NOT NULL
                        -- Not on Citus: there the log and extents are distributed
                        -- tables, the bound is not proven against its planner, and a
                        -- lookup is routed to one shard group by its trace_id anyway.
                        AND NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')
                        AND EXISTS (SELECT 1 FROM pg_trigger
                                    WHERE tgrelid = to_regclass('otel_traces')
                                      AND tgname = 'srql_summary_inserted')),
                    EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus'),
                    -- A never-analyzed table has reltuples -1 (0 before PostgreSQL 14).
                    (SELECT sum(p.reltuples) FILTER (WHERE p.reltuples > 0)::float8
                     FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhrelid
                     WHERE i.inhparent = to_regclass('otel_traces'))
             FROM (VALUES (1)) AS one(x)
             LEFT JOIN pg_class c ON c.oid = to_regclass('otel_trace_summaries')",
            &[],
        )
        .await?;
    let trace_extents: bool = row.get(2);
    let distributed: bool = row.get(3);
    let stored_spans: Option<f64> = row.get(4);
    let rel = row
        .get::<_, Option<String>>(0)
        .map(|kind| (kind, row.get::<_, bool>(1)));
    let cfg = stored_config(client).await?;
    let summaries = match rel {
        None => SummaryState::Missing,
        Some((relkind, populated)) => {
            let kind = match relkind.as_str() {
                "m" => SummaryKind::MaterializedView,
                _ => SummaryKind::Table,
            };
            let (last_ok, _) = last_runs(client).await?;
            let snapshot = last_ok.and_then(|r| r.snapshot_at.map(|s| (s, r.covers_from)));
            match (populated, snapshot) {
                (true, Some((as_of, run_covers_from))) => {
                    // A view holds the window as of its snapshot. The table's rows are
                    // pruned at each drain's own cutoff, which may be later than
                    // as_of - window while arrivals are still pending.
                    let covers_from = match (kind, run_covers_from) {
                        (SummaryKind::Table, Some(c)) => c.max(as_of - cfg.window),
                        _ => as_of - cfg.window,
                    };
                    SummaryState::Ready {
                        kind,
                        covers_from,
                        as_of,
                    }
                }
                _ => SummaryState::Unpopulated { kind },
            }
        }
    };
    Ok(Catalog {
        summaries,
        retention: Some(cfg.retention),
        trace_extents,
        distributed,
        stored_spans,
    })
}
