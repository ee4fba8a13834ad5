//! The service's own background work: summary refresh where pg_cron does not run it,
//! keeping the pg_cron job in step with the settings row, and partition upkeep.
//!
//! `tick` does one round and returns what it did, so tests drive it directly; `run`
//! only adds timing and shutdown.

use std::time::Duration as StdDuration;

use chrono::Duration;
use tokio::sync::watch;

use store::summaries::{self, keys, RefreshMethod, RefreshRun};

/// What one round did.
#[derive(Debug, Clone, PartialEq)]
pub struct TickReport {
    /// The refresh this instance ran (its outcome says if another instance held the lock).
    pub refresh: Option<RefreshRun>,
    /// The interval the settings row asks for, used to sleep until the next round.
    pub interval: Duration,
}

/// One round: refresh now unless pg_cron owns refreshing; re-sync the pg_cron job's
/// schedule with the settings row.
pub async fn tick(url: &str) -> Result<TickReport, store::DbError> {
    // A dedicated session per round: the refresh lock is session-scoped and must die with
    // it if this task is cancelled mid-refresh.
    let client = store::db::connect(url).await?;
    let cfg = summaries::stored_config(&client).await?;
    let scheduler = summaries::get_setting(&client, keys::REFRESH_SCHEDULER).await?;
    let refresh = if scheduler.as_deref() == Some("pg_cron") {
        // Applying a changed interval is cheap and idempotent.
        store::cron::schedule(&client, url, cfg.refresh_interval).await?;
        None
    } else {
        let run = summaries::refresh(&client, RefreshMethod::Concurrently).await?;
        tracing::info!(
            outcome = %run.outcome,
            rows = ?run.rows,
            seconds = ?run.duration().map(|d| d.num_milliseconds() as f64 / 1000.0),
            error = ?run.error,
            "summary refresh"
        );
        Some(run)
    };
    Ok(TickReport {
        refresh,
        interval: cfg.refresh_interval,
    })
}

/// Runs rounds until `shutdown` flips; partition upkeep every `upkeep_every`.
pub async fn run(url: String, mut shutdown: watch::Receiver<bool>, upkeep_every: StdDuration) {
    let mut last_upkeep: Option<std::time::Instant> = None;
    loop {
        let sleep = match tick(&url).await {
            Ok(r) => r.interval.to_std().unwrap_or(StdDuration::from_secs(120)),
            Err(e) => {
                tracing::warn!(error = %e, "summary scheduler round failed; retrying");
                StdDuration::from_secs(10)
            }
        };
        if last_upkeep.is_none_or(|t| t.elapsed() >= upkeep_every) {
            if let Err(e) = upkeep(&url).await {
                tracing::warn!(error = %e, "partition upkeep failed");
            }
            last_upkeep = Some(std::time::Instant::now());
        }
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

async fn upkeep(url: &str) -> Result<(), store::DbError> {
    let client = store::db::connect(url).await?;
    let cfg = summaries::stored_config(&client).await?;
    store::partitions::upkeep(&client, cfg.retention).await?;
    Ok(())
}
