//! Incremental mode's maintenance phase, in place of the view's refresh (`refresh.rs`),
//! which does not exist in that mode: the switch from freshly loaded spans to the
//! incremental table, and drains of freshly arriving spans with first-page reads on the
//! summary path running meanwhile, as a dashboard's users meet them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;
use store::summaries::{Maintenance, RefreshMethod, RefreshRun, SummaryConfig};

use super::latency::{summarize, LatencySummary};
use super::progress;
use super::refresh::{Reader, READ_PAUSE};
use crate::incremental::{expect_ok, feed, secs, whole_drains, CYCLE_BASE_INDEX};

#[derive(Debug, Clone, Serialize)]
pub struct DrainResult {
    /// Wall clock of the switch after the load, as `srql migrate` switches: capture on,
    /// the table backfilled day by day beside the old relation (and analyzed), swapped in.
    pub switch_secs: f64,
    /// The drain right after the switch, of whatever the log held.
    pub first_drain_secs: f64,
    /// Summary rows once switched.
    pub rows: i64,
    /// Spans written before each timed drain: new traces over the last two minutes, a
    /// COPY per 100 spans, late spans last (`incremental::feed`).
    pub new_spans: u64,
    pub drains: Vec<Drain>,
    /// First-page reads on the summary path with no drain running.
    pub idle_reads: Option<LatencySummary>,
    /// The same reads, over other connections, while the drains run.
    pub reads_during_drains: Option<LatencySummary>,
    pub read_pause_ms: u64,
}

/// One timed drain.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Drain {
    /// As `srql_refresh_runs` records it.
    pub secs: f64,
    /// Traces it recomputed.
    pub traces: i64,
}

/// The switch, done as `srql bench-ui` and `srql migrate` do it, timed.
pub struct Switched {
    pub secs: f64,
    pub first_drain_secs: f64,
    pub rows: i64,
}

/// The drains to time after the first pages.
#[derive(Debug, Clone, Copy)]
pub struct DrainPlan {
    pub seed: u64,
    pub new_spans: u64,
    pub drains: usize,
    pub idle_reads: usize,
}

/// Switches the freshly loaded database to incremental summaries (a backfill), then
/// drains the log to the end so the first pages are timed on a settled table.
pub async fn switch(
    url: &str,
    cfg: &SummaryConfig,
    maintenance: &Maintenance,
) -> Result<Switched, String> {
    let bar = progress::spinner("switching to incremental summaries (backfill)");
    let mut client = store::db::connect(url).await.map_err(|e| e.to_string())?;
    let started = Instant::now();
    let progress_bar = bar.clone();
    store::summaries::ensure(&mut client, cfg, maintenance, &mut move |p| {
        progress_bar.set_message(format!(
            "backfilling the incremental summaries: {}/{} days, {} traces",
            p.done, p.total, p.rows
        ))
    })
    .await
    .map_err(|e| format!("switching to incremental summaries: {e}"))?;
    let switch_secs = started.elapsed().as_secs_f64();
    // Timed drains apply everything they were given, not the scheduler's time budget.
    whole_drains(&client, true).await?;
    bar.set_message("draining the log after the switch");
    let first = drain(&client).await?;
    let rows: i64 = client
        .query_one("SELECT count(*) FROM otel_trace_summaries", &[])
        .await
        .map_err(|e| format!("counting summaries: {e}"))?
        .get(0);
    bar.finish_and_clear();
    Ok(Switched {
        secs: switch_secs,
        first_drain_secs: secs(first.duration()),
        rows,
    })
}

/// Idle reads, then `plan.drains` times: new spans written, and the drain that applies
/// them timed with the reader running until it ends.
pub async fn run(
    url: &str,
    addr: SocketAddr,
    timeout: Duration,
    plan: DrainPlan,
    switched: Switched,
) -> Result<DrainResult, String> {
    let bar = progress::spinner("reads with no drain running");
    let mut reader = Reader::connect(addr, timeout).await?;
    let idle = reader.reads(plan.idle_reads).await?;
    let mut next = CYCLE_BASE_INDEX;
    let mut during = Vec::new();
    let mut drains = Vec::with_capacity(plan.drains);
    for i in 0..plan.drains {
        bar.set_message(format!(
            "drain {}/{}: writing {} new spans",
            i + 1,
            plan.drains,
            plan.new_spans
        ));
        feed(url, plan.seed, &mut next, plan.new_spans).await?;
        bar.set_message(format!("drain {}/{} with reads", i + 1, plan.drains));
        let drain_url = url.to_string();
        let task = tokio::spawn(async move {
            let client = store::db::connect(&drain_url)
                .await
                .map_err(|e| e.to_string())?;
            drain(&client).await
        });
        let run = reader.reads_until(task, "drain", &mut during).await?;
        drains.push(Drain {
            secs: secs(run.duration()),
            traces: run.rows.unwrap_or(0),
        });
    }
    bar.finish_and_clear();
    Ok(DrainResult {
        switch_secs: switched.secs,
        first_drain_secs: switched.first_drain_secs,
        rows: switched.rows,
        new_spans: plan.new_spans,
        drains,
        idle_reads: summarize(&idle),
        reads_during_drains: summarize(&during),
        read_pause_ms: READ_PAUSE.as_millis() as u64,
    })
}

/// One drain on `client`, as the service scheduler runs it, checked to have applied the
/// whole log.
async fn drain(client: &tokio_postgres::Client) -> Result<RefreshRun, String> {
    let run = expect_ok(store::summaries::refresh(client, RefreshMethod::Concurrently).await)?;
    match run.pending {
        Some(n) if n > 0 => Err(format!("the drain left {n} log entries behind")),
        _ => Ok(run),
    }
}
