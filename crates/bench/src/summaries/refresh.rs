//! Phase 2: what a refresh costs, and what readers notice while one runs.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;
use store::summaries::RefreshMethod;

use super::api::{Path, QueryError, SrqlClient};
use super::latency::{summarize, LatencySummary};
use super::progress;
use super::queries::{TabQuery, QUERIES};

/// Pause between reads. The readers stand for dashboard users, not a load test: a closed
/// loop without pauses would mostly measure the benchmark's own requests competing with
/// the refresh for the CPUs.
pub const READ_PAUSE: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, Serialize)]
pub struct RefreshResult {
    /// Wall clock of a plain `REFRESH MATERIALIZED VIEW` (readers wait meanwhile): the
    /// first population after the load.
    pub plain_secs: f64,
    /// Wall clock of `REFRESH MATERIALIZED VIEW CONCURRENTLY`, with the readers below.
    pub concurrent_secs: f64,
    /// Summary rows after the refresh.
    pub rows: i64,
    /// First-page reads on the summary path with no refresh running.
    pub idle_reads: Option<LatencySummary>,
    /// The same reads, over other connections, while the concurrent refresh runs.
    pub reads_during_concurrent: Option<LatencySummary>,
    pub read_pause_ms: u64,
}

/// Runs one refresh on its own connection, as the scheduler or pg_cron would, and checks
/// that it succeeded. Returns the wall-clock time and the row count.
async fn refresh(url: &str, method: RefreshMethod) -> Result<(Duration, i64), String> {
    let client = store::db::connect(url).await.map_err(|e| e.to_string())?;
    let started = Instant::now();
    let run = store::summaries::refresh(&client, method)
        .await
        .map_err(|e| format!("{} refresh: {e}", method.as_str()))?;
    let elapsed = started.elapsed();
    if run.outcome != store::summaries::RunOutcome::Ok {
        return Err(format!(
            "{} refresh ended `{}`{}",
            method.as_str(),
            run.outcome,
            run.error.map(|e| format!(": {e}")).unwrap_or_default()
        ));
    }
    Ok((elapsed, run.rows.unwrap_or(0)))
}

/// The first population after a load, timed as the plain refresh: a plain `REFRESH`
/// recomputes every row and swaps the relation whether or not it held rows before, so
/// this is what every plain refresh costs, and L is spared a second one. It includes
/// what follows every plain refresh: ANALYZE (migration 0028) and VACUUM
/// (`store::summaries::refresh`).
pub async fn populate(url: &str) -> Result<Duration, String> {
    let bar = progress::spinner("building the summaries (a plain refresh)");
    let (plain, _) = refresh(url, RefreshMethod::Full).await?;
    bar.finish_and_clear();
    Ok(plain)
}

pub async fn run(
    url: &str,
    addr: SocketAddr,
    timeout: Duration,
    idle_reads: usize,
    plain: Duration,
) -> Result<RefreshResult, String> {
    let bar = progress::spinner("reads with no refresh running");
    let mut reader = Reader::connect(addr, timeout).await?;
    let idle = reader.reads(idle_reads).await?;

    bar.set_message("REFRESH CONCURRENTLY with reads");
    let url = url.to_string();
    let task = tokio::spawn(async move { refresh(&url, RefreshMethod::Concurrently).await });
    let mut during = Vec::new();
    let (concurrent, rows) = reader.reads_until(task, "refresh", &mut during).await?;
    bar.finish_and_clear();
    Ok(RefreshResult {
        plain_secs: plain.as_secs_f64(),
        concurrent_secs: concurrent.as_secs_f64(),
        rows,
        idle_reads: summarize(&idle),
        reads_during_concurrent: summarize(&during),
        read_pause_ms: READ_PAUSE.as_millis() as u64,
    })
}

/// Paced first-page reads on the summary path, cycling through the tab's queries (also
/// incremental mode's readers during drains, `drain.rs`).
pub(crate) struct Reader {
    client: SrqlClient,
    queries: Vec<&'static TabQuery>,
    next: usize,
}

impl Reader {
    pub(crate) async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Self, String> {
        Ok(Self {
            client: SrqlClient::connect(addr, timeout).await?,
            queries: QUERIES.iter().filter(|q| q.is_first_page()).collect(),
            next: 0,
        })
    }

    pub(crate) async fn read(&mut self) -> Result<Duration, String> {
        let q = self.queries[self.next % self.queries.len()];
        self.next += 1;
        let elapsed = match self.client.query(q.srql, Path::Summaries, None).await {
            Ok((elapsed, _)) => elapsed,
            // A read stuck behind the refresh is exactly what this phase looks for: it
            // is reported as the timeout, the least it took, instead of ending the run.
            Err(QueryError::Timeout(t)) => t,
            Err(e) => return Err(e.to_string()),
        };
        tokio::time::sleep(READ_PAUSE).await;
        Ok(elapsed)
    }

    /// `n` reads with nothing else running: the baseline of a maintenance phase.
    pub(crate) async fn reads(&mut self, n: usize) -> Result<Vec<Duration>, String> {
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            times.push(self.read().await?);
        }
        Ok(times)
    }

    /// Reads, added to `during`, until `task` (named `what` in errors) has ended; then
    /// its outcome.
    pub(crate) async fn reads_until<T>(
        &mut self,
        task: tokio::task::JoinHandle<Result<T, String>>,
        what: &str,
        during: &mut Vec<Duration>,
    ) -> Result<T, String> {
        while !task.is_finished() {
            during.push(self.read().await?);
        }
        task.await.map_err(|e| format!("{what} task: {e}"))?
    }
}
