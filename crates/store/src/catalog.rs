//! The planner's view of the summaries ([`srql_plan::Catalog`]), read from the database.

use srql_plan::{Catalog, SummaryKind, SummaryState};
use tokio_postgres::GenericClient;

use crate::db::DbError;
use crate::refresh_runs::last_runs;
use crate::settings::stored_config;

pub async fn catalog(client: &impl GenericClient) -> Result<Catalog, DbError> {
    let rel = client
        .query_opt(
            "SELECT c.relkind::text, c.relispopulated FROM pg_class c
             WHERE c.oid = to_regclass('otel_trace_summaries')",
            &[],
        )
        .await?;
    let cfg = stored_config(client).await?;
    let summaries = match rel {
        None => SummaryState::Missing,
        Some(r) => {
            let kind = match r.get::<_, String>(0).as_str() {
                "m" => SummaryKind::MaterializedView,
                _ => SummaryKind::Table,
            };
            let populated: bool = r.get(1);
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
    })
}
