//! `srql_refresh_runs`: one row per refresh, drain, build or backfill of the summaries,
//! and the one entry point that runs a refresh (`srql_refresh_summaries`).

use chrono::{DateTime, Duration, Utc};
use tokio_postgres::GenericClient;

use crate::db::DbError;

/// How a run refreshed the summaries, as stored in `srql_refresh_runs.method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunMethod {
    /// A view refreshed without blocking readers.
    #[default]
    Concurrently,
    /// A view refreshed or built in full.
    Full,
    /// A drain of the log of touched traces.
    Incremental,
    /// Every trace in the window recomputed in place.
    Resync,
    /// A summary table filled from scratch before it was swapped in.
    Backfill,
}

impl RunMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            RunMethod::Concurrently => "concurrently",
            RunMethod::Full => "full",
            RunMethod::Incremental => "incremental",
            RunMethod::Resync => "resync",
            RunMethod::Backfill => "backfill",
        }
    }

    fn parse(s: &str) -> Option<RunMethod> {
        [
            RunMethod::Concurrently,
            RunMethod::Full,
            RunMethod::Incremental,
            RunMethod::Resync,
            RunMethod::Backfill,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

/// How a run ended, as stored in `srql_refresh_runs.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Still in progress (or its session is gone and the next run will say so).
    #[default]
    Running,
    Ok,
    Failed,
    /// Another run held the refresh lock: nothing was done.
    Skipped,
    /// Its session ended mid-way; found by the next run.
    Abandoned,
}

impl RunOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Running => "running",
            RunOutcome::Ok => "ok",
            RunOutcome::Failed => "failed",
            RunOutcome::Skipped => "skipped",
            RunOutcome::Abandoned => "abandoned",
        }
    }

    fn parse(s: &str) -> Option<RunOutcome> {
        [
            RunOutcome::Running,
            RunOutcome::Ok,
            RunOutcome::Failed,
            RunOutcome::Skipped,
            RunOutcome::Abandoned,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

impl std::fmt::Display for RunOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for RunMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of `srql_refresh_runs`.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct RefreshRun {
    pub id: i64,
    pub method: RunMethod,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub snapshot_at: Option<DateTime<Utc>>,
    pub outcome: RunOutcome,
    pub rows: Option<i64>,
    pub error: Option<String>,
    /// Incremental runs: the earliest trace end time the table is complete for.
    pub covers_from: Option<DateTime<Utc>>,
    /// Incremental runs: arrival-to-summary lag over the log entries applied.
    pub lag_p50_secs: Option<f64>,
    pub lag_p99_secs: Option<f64>,
    pub lag_max_secs: Option<f64>,
    /// Incremental runs: log entries left waiting at the end.
    pub pending: Option<i64>,
}

impl RefreshRun {
    pub fn duration(&self) -> Option<Duration> {
        self.finished_at.map(|f| f - self.started_at)
    }
}

const RUN_COLUMNS: &str =
    "id, method, started_at, finished_at, snapshot_at, outcome, rows, error, \
     covers_from, lag_p50_secs, lag_p99_secs, lag_max_secs, pending";

fn run_of(r: &tokio_postgres::Row) -> Result<RefreshRun, DbError> {
    let method: String = r.get(1);
    let outcome: String = r.get(5);
    Ok(RefreshRun {
        id: r.get(0),
        method: RunMethod::parse(&method)
            .ok_or_else(|| DbError::Decode(format!("unknown refresh method `{method}`")))?,
        started_at: r.get(2),
        finished_at: r.get(3),
        snapshot_at: r.get(4),
        outcome: RunOutcome::parse(&outcome)
            .ok_or_else(|| DbError::Decode(format!("unknown refresh outcome `{outcome}`")))?,
        rows: r.get(6),
        error: r.get(7),
        covers_from: r.get(8),
        lag_p50_secs: r.get(9),
        lag_p99_secs: r.get(10),
        lag_max_secs: r.get(11),
        pending: r.get(12),
    })
}

/// What `srql_refresh_summaries` is asked for; in incremental mode `Concurrently` drains
/// the log and `Full` recomputes every trace in the window in place (a resync).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshMethod {
    /// `REFRESH MATERIALIZED VIEW CONCURRENTLY`: readers are not blocked.
    Concurrently,
    /// A plain refresh: faster, but blocks readers while it runs.
    Full,
}

impl RefreshMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            RefreshMethod::Concurrently => RunMethod::Concurrently.as_str(),
            RefreshMethod::Full => RunMethod::Full.as_str(),
        }
    }
}

/// Runs one refresh through the shared procedure and returns what it recorded.
pub async fn refresh(
    client: &impl GenericClient,
    method: RefreshMethod,
) -> Result<RefreshRun, DbError> {
    let heap_before = view_heap(client).await?;
    client
        .execute("CALL srql_refresh_summaries($1)", &[&method.as_str()])
        .await?;
    let heap_after = view_heap(client).await?;
    if heap_after.is_some() && heap_after != heap_before {
        client.batch_execute("VACUUM otel_trace_summaries").await?;
    }
    let row = client
        .query_one(
            &format!(
                "SELECT {RUN_COLUMNS} FROM srql_refresh_runs
                 WHERE backend_pid = pg_backend_pid() ORDER BY id DESC LIMIT 1"
            ),
            &[],
        )
        .await?;
    run_of(&row)
}

/// Drains a one-shot command runs at most, each ending at its time budget
/// (`drain_max_secs`): enough for any backlog a load leaves, and a bound when writers
/// keep the log from emptying.
pub const MAX_CATCH_UP_DRAINS: usize = 1_000;

/// [`refresh`] until nothing written before the call is left out, for a one-shot
/// command (a load, `srql refresh`) after which queries must see everything: a view's
/// refresh is one run; a drain stops at its time budget, so drains run again while the
/// log still holds entries, up to [`MAX_CATCH_UP_DRAINS`], or until one does not end
/// `ok` (another holds the lock, and so drains for us). Returns every run, in order.
pub async fn refresh_caught_up(
    client: &impl GenericClient,
    method: RefreshMethod,
) -> Result<Vec<RefreshRun>, DbError> {
    let mut runs = Vec::new();
    loop {
        let run = refresh(client, method).await?;
        let again = run.method == RunMethod::Incremental
            && run.outcome == RunOutcome::Ok
            && run.pending.unwrap_or(0) > 0
            && runs.len() + 1 < MAX_CATCH_UP_DRAINS;
        runs.push(run);
        if !again {
            return Ok(runs);
        }
    }
}

/// The file node of the view's heap, `None` when the summaries are not a view.
///
/// A plain refresh swaps in a new heap, which has no page marked all-visible, and
/// autovacuum is not told (its rows were counted against the heap built for the swap):
/// until the deletes of later concurrent refreshes add up to a vacuum, at 10M spans about
/// an hour, every index-only scan of the view (the 24 h service list) also read each row
/// from the heap. So [`refresh`] vacuums when the heap changed. Not in the procedure:
/// VACUUM cannot run inside one, so pg_cron's refreshes (concurrent, but for the
/// first population) are left to autovacuum.
async fn view_heap(client: &impl GenericClient) -> Result<Option<u32>, DbError> {
    let row = client
        .query_opt(
            "SELECT c.relfilenode FROM pg_class c
             WHERE c.oid = to_regclass('otel_trace_summaries') AND c.relkind = 'm'",
            &[],
        )
        .await?;
    Ok(row.map(|r| r.get::<_, tokio_postgres::types::Oid>(0)))
}

/// Records a run that built the summaries outside the refresh procedure (a view build
/// or a backfill), so freshness is known from the start. It started, and reflects every
/// span committed before, `at` (the transaction's start when `None`).
pub async fn record_build(
    client: &impl GenericClient,
    method: RunMethod,
    at: Option<DateTime<Utc>>,
    covers_from: Option<DateTime<Utc>>,
    rows: i64,
) -> Result<(), DbError> {
    client
        .execute(
            "INSERT INTO srql_refresh_runs
                 (method, started_at, finished_at, snapshot_at, covers_from, outcome, rows)
             VALUES ($1, coalesce($2, now()), clock_timestamp(), coalesce($2, now()), $3, $4, $5)",
            &[
                &method.as_str(),
                &at,
                &covers_from,
                &RunOutcome::Ok.as_str(),
                &rows,
            ],
        )
        .await?;
    Ok(())
}

/// The most recent successful refresh, and the most recent run of any outcome.
pub async fn last_runs(
    client: &impl GenericClient,
) -> Result<(Option<RefreshRun>, Option<RefreshRun>), DbError> {
    let ok = client
        .query_opt(
            &format!(
                "SELECT {RUN_COLUMNS} FROM srql_refresh_runs WHERE outcome = $1
                 ORDER BY finished_at DESC LIMIT 1"
            ),
            &[&RunOutcome::Ok.as_str()],
        )
        .await?
        .map(|r| run_of(&r))
        .transpose()?;
    let any = client
        .query_opt(
            &format!("SELECT {RUN_COLUMNS} FROM srql_refresh_runs ORDER BY id DESC LIMIT 1"),
            &[],
        )
        .await?
        .map(|r| run_of(&r))
        .transpose()?;
    Ok((ok, any))
}

/// The id of the last drain that applied anything, 0 if none.
pub async fn last_applying_drain(client: &impl GenericClient) -> Result<i64, DbError> {
    Ok(client
        .query_one(
            "SELECT coalesce(max(id), 0) FROM srql_refresh_runs
             WHERE method IN ($1, $2) AND rows > 0",
            &[
                &RunMethod::Incremental.as_str(),
                &RunMethod::Resync.as_str(),
            ],
        )
        .await?
        .get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_round_trip() {
        for m in [
            RunMethod::Concurrently,
            RunMethod::Full,
            RunMethod::Incremental,
            RunMethod::Resync,
            RunMethod::Backfill,
        ] {
            assert_eq!(RunMethod::parse(m.as_str()), Some(m));
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
        }
        for o in [
            RunOutcome::Running,
            RunOutcome::Ok,
            RunOutcome::Failed,
            RunOutcome::Skipped,
            RunOutcome::Abandoned,
        ] {
            assert_eq!(RunOutcome::parse(o.as_str()), Some(o));
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
        assert_eq!(RunOutcome::parse("OK"), None);
    }
}
