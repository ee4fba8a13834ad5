//! One-shot refreshes (`srql refresh`, and the ones after a load): a view's refresh, or
//! drains until the log is empty, summed for the report.

use store::summaries::{RefreshMethod, RefreshRun};

/// What the runs of [`caught_up`] did together.
pub struct Refreshed {
    /// Rows written over all runs (summary rows, or traces drained).
    pub rows: i64,
    /// Wall clock from the first run's start to the last one's end.
    pub secs: f64,
    pub runs: usize,
    /// The last run: its outcome and error are the result's.
    pub last: RefreshRun,
}

/// `store::summaries::refresh_caught_up` on the database at `url`, summed.
pub async fn caught_up(url: &str, method: RefreshMethod) -> Result<Refreshed, String> {
    let client = store::db::connect(url).await.map_err(|e| e.to_string())?;
    let runs = store::summaries::refresh_caught_up(&client, method)
        .await
        .map_err(|e| e.to_string())?;
    let rows = runs.iter().filter_map(|r| r.rows).sum();
    let count = runs.len();
    let first_start = runs.first().map(|r| r.started_at);
    let last = runs
        .into_iter()
        .last()
        .ok_or("no refresh ran".to_string())?;
    let secs = match (first_start, last.finished_at) {
        (Some(start), Some(end)) => (end - start).num_milliseconds() as f64 / 1000.0,
        _ => 0.0,
    };
    Ok(Refreshed {
        rows,
        secs,
        runs: count,
        last,
    })
}
