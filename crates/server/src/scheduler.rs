//! The service's own background work: summary maintenance where pg_cron does not run it,
//! keeping the pg_cron job in step with the settings row, and partition upkeep.
//!
//! In view mode a round refreshes the view (unless pg_cron owns that) every
//! `refresh_interval`. In incremental mode a round drains the log of touched traces every
//! `drain_interval` (a second by default): pg_cron 1.4 counts whole minutes, so in that
//! mode the service always drains and there is no pg_cron job.
//!
//! `tick` does one round and returns what it did, so tests drive it directly; `run`
//! only adds timing, a reused connection and shutdown. Sealing (store::sealing) runs at
//! start and after every partition upkeep, in a task of its own: a day's copy may take
//! a minute, and drains must not wait for it.

use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use tokio::sync::watch;
use tokio_postgres::Client;

use store::summaries::{self, keys, RefreshMethod, RefreshRun, RunOutcome, SummaryMode};

/// What one round did.
#[derive(Debug, Clone, PartialEq)]
pub struct TickReport {
    /// The refresh or drain this instance ran (its outcome says if another instance held
    /// the lock).
    pub refresh: Option<RefreshRun>,
    /// How long to wait before the next round: the refresh interval, or in incremental
    /// mode the drain interval.
    pub interval: Duration,
    pub mode: SummaryMode,
}

/// One round on a fresh connection: refresh or drain now unless pg_cron owns
/// refreshing; re-sync the pg_cron job's schedule with the settings row.
pub async fn tick(url: &str) -> Result<TickReport, store::DbError> {
    // A dedicated session: the refresh lock is session-scoped and must die with it if
    // this task is cancelled mid-refresh.
    let client = store::db::connect(url).await?;
    tick_on(&client, url).await
}

/// One round on `client`, which must be a dedicated session (see [`tick`]).
pub async fn tick_on(client: &Client, url: &str) -> Result<TickReport, store::DbError> {
    let cfg = summaries::stored_config(client).await?;
    let maintenance = summaries::stored_maintenance(client).await?;
    if maintenance.mode == SummaryMode::Incremental {
        let run = summaries::refresh(client, RefreshMethod::Concurrently).await?;
        // Every second: only drains that did something, or went wrong, are worth a line.
        if run.outcome != RunOutcome::Ok || run.rows.unwrap_or(0) > 0 {
            tracing::debug!(
                outcome = %run.outcome,
                traces = ?run.rows,
                pending = ?run.pending,
                lag_max_secs = ?run.lag_max_secs,
                seconds = ?run.duration().map(|d| d.num_milliseconds() as f64 / 1000.0),
                error = ?run.error,
                "summary drain"
            );
        }
        if run.outcome == RunOutcome::Failed {
            tracing::warn!(error = ?run.error, "summary drain failed");
        }
        return Ok(TickReport {
            refresh: Some(run),
            interval: maintenance.drain_interval,
            mode: maintenance.mode,
        });
    }
    let scheduler = summaries::get_setting(client, keys::REFRESH_SCHEDULER).await?;
    let refresh = if scheduler.as_deref() == Some("pg_cron") {
        // Applying a changed interval is cheap and idempotent.
        store::cron::schedule(client, url, cfg.refresh_interval).await?;
        None
    } else {
        let run = summaries::refresh(client, RefreshMethod::Concurrently).await?;
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
        mode: maintenance.mode,
    })
}

/// Runs rounds until `shutdown` flips; partition upkeep every `upkeep_every`, then
/// sealing of the days older than `seal_after` (`None`: never).
///
/// Rounds start an interval apart (not an interval after the previous one ended), on one
/// connection reused while it works, so a drain every second does not also pay for a
/// new session and cold plan caches every second.
pub async fn run(
    url: String,
    mut shutdown: watch::Receiver<bool>,
    upkeep_every: StdDuration,
    seal_after: Option<Duration>,
) {
    let mut last_upkeep: Option<Instant> = None;
    let mut client: Option<Client> = None;
    let mut sealer: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        let started = Instant::now();
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            client = match store::db::connect(&url).await {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "summary scheduler cannot connect; retrying");
                    None
                }
            };
        }
        let sleep = match &client {
            None => StdDuration::from_secs(10),
            Some(c) => match tick_on(c, &url).await {
                Ok(r) => r
                    .interval
                    .to_std()
                    .unwrap_or(StdDuration::from_secs(120))
                    .saturating_sub(started.elapsed()),
                Err(e) => {
                    tracing::warn!(error = %e, "summary scheduler round failed; retrying");
                    // A session that failed mid-procedure may still hold the refresh
                    // lock: start the next round on a new one.
                    client = None;
                    StdDuration::from_secs(10)
                }
            },
        };
        if last_upkeep.is_none_or(|t| t.elapsed() >= upkeep_every) {
            if let Err(e) = upkeep(&url).await {
                tracing::warn!(error = %e, "partition upkeep failed");
            }
            last_upkeep = Some(Instant::now());
            if let Some(after) = seal_after {
                // One round at a time; a round still running covers this one.
                if sealer.as_ref().is_none_or(|t| t.is_finished()) {
                    sealer = Some(tokio::spawn(seal(url.clone(), after)));
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() {
            break;
        }
    }
    // An interrupted seal is resumed by the next start: its session ending rolls back
    // the step it was in.
    if let Some(t) = sealer {
        t.abort();
    }
}

/// One sealing round (store::sealing::seal_due) on its own session.
async fn seal(url: String, seal_after: Duration) {
    let round = async {
        let mut client = store::db::connect(&url).await?;
        let retention = summaries::stored_config(&client).await?.retention;
        store::sealing::seal_due(&mut client, seal_after, retention).await
    }
    .await;
    match round {
        Ok(r) if r.unavailable => tracing::debug!(
            "{}",
            r.unavailable_because.unwrap_or(store::sealing::UNAVAILABLE)
        ),
        Ok(r) => {
            if !r.postponed.is_empty() {
                tracing::info!(
                    days = r.postponed.len(),
                    "sealing postponed to the next upkeep"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "sealing round failed"),
    }
}

async fn upkeep(url: &str) -> Result<(), store::DbError> {
    let client = store::db::connect(url).await?;
    let cfg = summaries::stored_config(&client).await?;
    // Plain partition upkeep unless capture is on; then traces in the partitions being
    // dropped are queued for a recompute first.
    store::incremental::upkeep(&client, cfg.retention).await?;
    Ok(())
}
