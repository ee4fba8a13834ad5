//! How fresh the summaries are, for `/healthz` and `/metrics`.

use chrono::{DateTime, Duration, Utc};
use tokio_postgres::GenericClient;

use crate::db::DbError;
use crate::refresh_runs::{last_runs, RunOutcome};
use crate::settings::{stored_maintenance, SummaryMode};

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Freshness {
    pub mode: SummaryMode,
    /// Seconds since the span data the summaries reflect (the last successful run's
    /// `snapshot_at`). In incremental mode: every span that arrived longer ago than this
    /// is in its trace's summary row.
    pub age_seconds: Option<f64>,
    /// Incremental mode: log entries (touched traces) not yet applied.
    pub pending_entries: i64,
    /// Incremental mode: how long the oldest of them has waited.
    pub oldest_pending_seconds: Option<f64>,
    /// Incremental mode: arrival-to-summary lag measured by the last drain that applied
    /// anything (quantiles over its log entries).
    pub last_lag: Option<DrainLag>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DrainLag {
    pub p50_seconds: f64,
    pub p99_seconds: f64,
    pub max_seconds: f64,
    /// When that drain finished.
    pub measured_at: Option<DateTime<Utc>>,
}

/// Reads [`Freshness`]: a few small queries, cheap enough for every scrape.
pub async fn freshness(client: &impl GenericClient) -> Result<Freshness, DbError> {
    let mode = stored_maintenance(client).await?.mode;
    let (last_ok, _) = last_runs(client).await?;
    let now = Utc::now();
    let secs = |d: Duration| d.num_milliseconds() as f64 / 1000.0;
    let age_seconds = last_ok
        .as_ref()
        .and_then(|r| r.snapshot_at)
        .map(|s| secs(now - s).max(0.0));
    let pending = client
        .query_one("SELECT count(*), min(logged_at) FROM srql_summary_log", &[])
        .await?;
    let oldest: Option<DateTime<Utc>> = pending.get(1);
    let lag = client
        .query_opt(
            "SELECT lag_p50_secs, lag_p99_secs, lag_max_secs, finished_at FROM srql_refresh_runs
             WHERE outcome = $1 AND lag_max_secs IS NOT NULL
             ORDER BY finished_at DESC LIMIT 1",
            &[&RunOutcome::Ok.as_str()],
        )
        .await?;
    Ok(Freshness {
        mode,
        age_seconds,
        pending_entries: pending.get(0),
        oldest_pending_seconds: oldest.map(|o| secs(now - o).max(0.0)),
        last_lag: lag.map(|r| DrainLag {
            p50_seconds: r.get::<_, Option<f64>>(0).unwrap_or_default(),
            p99_seconds: r.get::<_, Option<f64>>(1).unwrap_or_default(),
            max_seconds: r.get::<_, Option<f64>>(2).unwrap_or_default(),
            measured_at: r.get(3),
        }),
    })
}
