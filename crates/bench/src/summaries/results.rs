//! The results document (`bench.json`): everything measured, with what produced it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::drain::DrainResult;
use super::first_page::{Policies, QueryLatency};
use super::latency::Measurement;
use super::machine::Machine;
use super::refresh::RefreshResult;
use super::storage::Storage;

#[derive(Debug, Clone, Serialize)]
pub struct BenchResults {
    pub started_at: DateTime<Utc>,
    /// The arguments after the binary's name.
    pub command: String,
    /// False while scale points are still to run (the file is rewritten after each).
    pub complete: bool,
    /// The summary mode measured (`--summary-mode`).
    pub summary_mode: store::summaries::SummaryMode,
    pub total_secs: f64,
    pub machine: Machine,
    pub settings: Settings,
    pub scales: Vec<ScaleResult>,
    pub targets: Vec<TargetCheck>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub seed: u64,
    pub writers: usize,
    pub timeout_secs: u64,
    pub policies: Policies,
    /// Reads timed with no refresh running (the baseline of the refresh phase).
    pub idle_reads: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScaleResult {
    /// `S`, `M` or `L`, or `N spans` for a size given with `--spans`.
    pub scale: String,
    pub target_spans: u64,
    pub load: LoadResult,
    pub queries: Vec<QueryLatency>,
    /// The plain `GROUP BY trace_id` of the last 24 hours' spans, the on-the-fly path's
    /// yardstick, timed like its last-24-hours query.
    pub plain_aggregation_24h: Measurement,
    /// Materialized-view mode: the refresh phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh: Option<RefreshResult>,
    /// Incremental mode, in its place: the switch and drains of arriving spans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainResult>,
    pub storage: Storage,
    /// Wall clock for this scale point, load included.
    pub secs: f64,
    /// Share of the machine's CPU time other processes used meanwhile (0..=1); `None`
    /// when the database is not the embedded cluster, whose processes we can tell apart.
    pub other_cpu_share: Option<f64>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct LoadResult {
    pub spans: u64,
    pub traces: u64,
    /// Generation and COPY, then ANALYZE (what `load::bulk` does).
    pub secs: f64,
    pub spans_per_sec: f64,
    pub writers: usize,
    /// The `VACUUM (ANALYZE)` after the load that puts the tables in a steady state; not
    /// in `secs`.
    pub vacuum_secs: f64,
}

/// One of the seed's targets, as measured by a run.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    pub target: String,
    pub measured: String,
    /// `None` when the run did not measure it (no L, or the measurement was skipped).
    pub met: Option<bool>,
}
