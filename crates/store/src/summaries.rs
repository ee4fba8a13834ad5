//! The `otel_trace_summaries` relation: a materialized view refreshed as a whole, or (in
//! incremental mode, see [`crate::incremental`]) a table kept fresh from a log of touched
//! traces. This module makes the relation match the stored configuration; its concerns
//! live beside it: [`crate::settings`], [`crate::refresh_runs`], [`crate::catalog`],
//! [`crate::freshness`], and are re-exported here for callers that think in summaries.

use chrono::Duration;
use tokio_postgres::Client;

pub use crate::catalog::catalog;
pub use crate::freshness::{freshness, DrainLag, Freshness};
pub use crate::incremental::BackfillProgress;
pub use crate::refresh_runs::{
    last_runs, refresh, refresh_caught_up, RefreshMethod, RefreshRun, RunMethod, RunOutcome,
};
pub use crate::settings::{
    get_setting, keys, set_setting, stored_config, stored_maintenance, Maintenance, SummaryConfig,
    SummaryMode,
};

use crate::db::DbError;
use crate::incremental;
use crate::locks::AdvisoryLock;
use crate::refresh_runs::record_build;
use crate::summary_indexes;

/// [`ensure`] in materialized-view mode, without progress: the seed's design.
pub async fn ensure_view(client: &mut Client, cfg: &SummaryConfig) -> Result<bool, DbError> {
    ensure(client, cfg, &Maintenance::default(), &mut |_| {}).await
}

/// Stores `cfg` and `maintenance`, and makes sure the summary relation is what they ask
/// for, building it when the window or mode changed. Returns whether it built anything.
///
/// A view rebuild fills a new view beside the old relation and swaps them in one
/// transaction; a switch to incremental mode backfills a new table beside the old
/// relation (resumable, reporting to `progress`) and swaps likewise. Readers never see a
/// missing or empty relation.
pub async fn ensure(
    client: &mut Client,
    cfg: &SummaryConfig,
    maintenance: &Maintenance,
    progress: &mut (dyn FnMut(BackfillProgress) + Send),
) -> Result<bool, DbError> {
    store_config(client, cfg, maintenance).await?;
    // Both modes get it: it costs nothing, and a later switch finds it current.
    incremental::install_apply_function(client).await?;
    match maintenance.mode {
        SummaryMode::Incremental => incremental::ensure_table(client, cfg.window, progress).await,
        SummaryMode::MaterializedView => {
            AdvisoryLock::Refresh.acquire(&*client).await?;
            let result = build_if_needed(client, cfg.window).await;
            AdvisoryLock::Refresh.release(&*client).await?;
            let built = result?;
            // Leaving incremental mode (or a backfill that never finished): nobody drains
            // the log any more, so stop feeding it.
            incremental::disable(client).await?;
            Ok(built)
        }
    }
}

/// Stores the window, retention and intervals the procedures read from `srql_settings`.
pub async fn store_config(
    client: &Client,
    cfg: &SummaryConfig,
    maintenance: &Maintenance,
) -> Result<(), DbError> {
    for (key, value) in [
        (keys::WINDOW_SECS, cfg.window.num_seconds()),
        (keys::RETENTION_SECS, cfg.retention.num_seconds()),
        (
            keys::REFRESH_INTERVAL_SECS,
            cfg.refresh_interval.num_seconds(),
        ),
    ] {
        set_setting(client, key, &value.to_string()).await?;
    }
    set_setting(
        client,
        keys::DRAIN_INTERVAL_MS,
        &maintenance
            .drain_interval
            .num_milliseconds()
            .max(1)
            .to_string(),
    )
    .await?;
    Ok(())
}

async fn build_if_needed(client: &mut Client, window: Duration) -> Result<bool, DbError> {
    let window_secs = window.num_seconds();
    let current: Option<String> = client
        .query_opt(
            "SELECT obj_description(to_regclass('otel_trace_summaries'), 'pg_class')",
            &[],
        )
        .await?
        .and_then(|r| r.get(0));
    let marker = format!(
        "srql summaries; window_secs={window_secs}; def={}",
        incremental::definition_hash()
    );
    if current.as_deref() == Some(marker.as_str()) {
        return Ok(false);
    }
    let started = std::time::Instant::now();
    // Coming from incremental mode, the current relation is a table.
    let drop_current = incremental::drop_current_sql(client).await?;
    let tx = client.transaction().await?;
    // The window is an integer we format ourselves; DDL cannot take bind parameters.
    tx.batch_execute(&format!(
        "DROP MATERIALIZED VIEW IF EXISTS otel_trace_summaries_next;
         CREATE MATERIALIZED VIEW otel_trace_summaries_next AS
         {};
         {}
         {drop_current}
         ALTER MATERIALIZED VIEW otel_trace_summaries_next RENAME TO otel_trace_summaries;
         {}
         COMMENT ON MATERIALIZED VIEW otel_trace_summaries IS '{marker}';
         ANALYZE otel_trace_summaries;",
        srql_plan::summary_sql::materialized_view_query(window_secs),
        summary_indexes::create_all_sql("otel_trace_summaries_next"),
        summary_indexes::rename_all_sql("otel_trace_summaries_next", "otel_trace_summaries"),
    ))
    .await?;
    // The build is a refresh too: record it so freshness is known from the start.
    let rows: i64 = tx
        .query_one("SELECT count(*) FROM otel_trace_summaries", &[])
        .await?
        .get(0);
    record_build(&tx, RunMethod::Full, None, None, rows).await?;
    // The refresh procedure reads the mode: it must flip with the relation.
    set_setting(
        &tx,
        keys::SUMMARY_MODE,
        SummaryMode::MaterializedView.as_str(),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(window_secs, elapsed = ?started.elapsed(), "summary view built");
    Ok(true)
}
