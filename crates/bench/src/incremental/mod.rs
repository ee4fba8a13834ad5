//! `srql bench-incremental`: what incremental summary maintenance costs and how fresh it
//! keeps the summaries, beside the materialized view's full refresh.
//!
//! Per scale point (S, M, L of docs/workload.md), in a database of its own:
//! 1. bulk load with capture off, then a full `REFRESH ... CONCURRENTLY` (the comparison);
//! 2. the switch to incremental mode (backfill);
//! 3. drain cycles: insert N new spans the way a live feed does (a COPY per 100 ms tick),
//!    then time the one drain that applies them, for several N: cost against new-span
//!    volume here, against total volume across scale points;
//! 4. freshness under sustained ingest (`load::follow` at each rate, the service
//!    scheduler draining every second): probes measure span arrival to summary row;
//! 5. optionally, the capture triggers' cost on a bulk COPY load (a second database
//!    loaded with capture on).
//!
//! Results merge into bench-results/incremental.json by scale point (so L can run on its
//! own later) and are rendered between the `<!-- incremental:start -->` and
//! `<!-- incremental:end -->` markers of BENCHMARKS.md.

pub(crate) mod lag;
pub(crate) mod report;

use std::path::PathBuf;
use std::time::Instant;

use chrono::{Duration, Utc};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use store::summaries::{self, keys, Maintenance, RefreshMethod, SummaryConfig, SummaryMode};
use workload::{Scale, WorkloadConfig};

use crate::scratch::{self, Server};
use crate::spans::{copy_spans, Arrival};

/// Spans per COPY in a drain cycle: what a 1k spans/s feed writes per 100 ms tick.
const CYCLE_COPY_SPANS: usize = 100;
/// Trace indices for the drain cycles, far from the bulk load's and follow's.
pub(crate) const CYCLE_BASE_INDEX: u64 = 1 << 41;

#[derive(Debug, Clone, Args)]
pub struct BenchIncrementalArgs {
    /// Scale points, comma-separated: S (100k spans), M (1M), L (10M). Each replaces its
    /// own entry in the results file, so L can be run on its own.
    #[arg(long, value_delimiter = ',', default_value = "S,M", value_parser = Scale::parse)]
    pub scales: Vec<Scale>,
    /// New spans per drain cycle, comma-separated (120000 = 2 minutes at 1k spans/s).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,120000")]
    pub new_spans: Vec<u64>,
    /// Drain cycles per volume.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Sustained ingest rates (spans/s) for the freshness runs, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    pub rates: Vec<u64>,
    /// Seconds of measured ingest per rate.
    #[arg(long, default_value_t = 60)]
    pub ingest_secs: u64,
    /// Late-span delays are multiplied by this during ingest (1.0 = up to 10 minutes).
    #[arg(long, default_value_t = 0.01)]
    pub delay_scale: f64,
    /// Scale points at which the capture triggers' bulk-load overhead is measured (costs a
    /// second load of the scale point).
    #[arg(long, value_delimiter = ',', default_value = "S,M", value_parser = Scale::parse)]
    pub overhead_scales: Vec<Scale>,
    /// Bulk loads per setting (capture off, on) when measuring that overhead, alternated
    /// so drifting load on the machine hits both alike.
    #[arg(long, default_value_t = 2)]
    pub overhead_repeats: usize,
    /// Only measure the capture overhead, into the results already on file.
    #[arg(long)]
    pub overhead_only: bool,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Parallel COPY connections for the bulk loads.
    #[arg(long, default_value_t = crate::load::DEFAULT_WRITERS)]
    pub writers: usize,
    #[arg(long, default_value = "bench-results/incremental.json")]
    pub out: PathBuf,
    /// The Markdown file whose `<!-- incremental:start -->` section is rewritten.
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub markdown: PathBuf,
}

impl BenchIncrementalArgs {
    fn lag_settings(&self) -> lag::LagSettings {
        lag::LagSettings {
            seed: self.seed,
            delay_scale: self.delay_scale,
            ingest_secs: self.ingest_secs,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub machine: Machine,
    pub scales: Vec<ScaleResult>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpus: usize,
    pub memory_gib: f64,
    pub postgres: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScaleResult {
    pub scale: String,
    pub measured_at: chrono::DateTime<Utc>,
    pub spans: u64,
    pub traces: u64,
    /// Bulk load with capture off.
    pub load_secs: f64,
    pub load_spans_per_sec: f64,
    /// `REFRESH MATERIALIZED VIEW CONCURRENTLY` over the loaded data.
    pub full_refresh_secs: Vec<f64>,
    /// Switch to incremental mode: backfill and swap.
    pub backfill_secs: f64,
    pub cycles: Vec<Cycle>,
    pub lag: Vec<lag::LagResult>,
    pub capture_overhead: Option<Overhead>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cycle {
    pub new_spans: u64,
    /// Traces the drain recomputed.
    pub traces: i64,
    /// The drain's duration as recorded in srql_refresh_runs, per repeat.
    pub drain_secs: Vec<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Overhead {
    pub spans: u64,
    /// Medians of the runs below.
    pub off_spans_per_sec: f64,
    pub on_spans_per_sec: f64,
    #[serde(default)]
    pub off_runs: Vec<f64>,
    #[serde(default)]
    pub on_runs: Vec<f64>,
    /// Log entries the load left for the drain.
    pub log_entries: i64,
    /// Draining that backlog (the traces of the whole load).
    pub backlog_drain_secs: f64,
}

pub async fn run(db: &Server, args: &BenchIncrementalArgs) -> Result<(), String> {
    let mut results = report::read(&args.out).unwrap_or(Results {
        machine: machine(&db.url).await?,
        scales: Vec::new(),
    });
    results.machine = machine(&db.url).await?;
    let mut scales = args.scales.clone();
    scales.sort_by_key(|s| s.spans());
    scales.dedup();
    if args.overhead_only {
        for scale in scales {
            let Some(i) = results.scales.iter().position(|s| s.scale == scale.name()) else {
                println!(
                    "no results for {} yet: run it without --overhead-only",
                    scale.name()
                );
                continue;
            };
            results.scales[i].capture_overhead = Some(overhead(db, args, scale).await?);
            report::write(&results, &args.out, &args.markdown)?;
        }
        return Ok(());
    }
    for scale in scales {
        println!(
            "== scale {}: {} spans over {} days",
            scale.name(),
            scale.spans(),
            workload::DEFAULT_RANGE.num_days()
        );
        let r = run_scale(db, args, scale).await?;
        report::print_scale(&r);
        results.scales.retain(|s| s.scale != r.scale);
        results.scales.push(r);
        results
            .scales
            .sort_by_key(|s| ["S", "M", "L"].iter().position(|n| *n == s.scale));
        // After every scale point, so a failure at L keeps what S and M measured.
        report::write(&results, &args.out, &args.markdown)?;
    }
    println!(
        "results in {} and {}",
        args.out.display(),
        args.markdown.display()
    );
    Ok(())
}

pub(crate) async fn machine(url: &str) -> Result<Machine, String> {
    let client = store::db::connect(url).await.map_err(|e| e.to_string())?;
    let postgres: String = client
        .query_one("SELECT current_setting('server_version')", &[])
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    Ok(Machine {
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_gib: kib as f64 / (1024.0 * 1024.0),
        postgres,
    })
}

pub(crate) fn summary_config() -> SummaryConfig {
    SummaryConfig {
        window: workload::DEFAULT_RANGE,
        retention: workload::DEFAULT_RANGE,
        refresh_interval: Duration::minutes(2),
    }
}

pub(crate) fn incremental() -> Maintenance {
    Maintenance {
        mode: SummaryMode::Incremental,
        drain_interval: Duration::seconds(1),
    }
}

async fn run_scale(
    db: &Server,
    args: &BenchIncrementalArgs,
    scale: Scale,
) -> Result<ScaleResult, String> {
    let name = format!("srql_bench_incr_{}", scale.name().to_ascii_lowercase());
    let url = scratch::recreate_database(db, &name).await?;
    let result = measure_scale(db, &url, args, scale).await;
    // Dropped whatever happened: L's gigabytes are freed and a rerun starts clean.
    let dropped = scratch::drop_database(db, &name).await;
    let result = result?;
    dropped?;
    Ok(result)
}

fn bar(len: u64, what: &str) -> Result<ProgressBar, String> {
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:30}}] {{human_pos}}/{{human_len}} ({{per_sec}}, eta {{eta}})"
        ))
        .map_err(|e| e.to_string())?
        .progress_chars("=> "),
    );
    Ok(b)
}

/// Bulk-loads the scale point into `url` (already migrated); returns the load report.
async fn load(
    url: &str,
    args: &BenchIncrementalArgs,
    scale: Scale,
    what: &str,
) -> Result<(WorkloadConfig, crate::load::LoadReport), String> {
    let config = WorkloadConfig::at_scale(args.seed, scale, Utc::now());
    let b = bar(scale.spans(), what)?;
    let b2 = b.clone();
    let report = crate::load::bulk(url, config, args.writers, move |n| b2.set_position(n))
        .await
        .map_err(|e| e.to_string())?;
    b.finish_and_clear();
    Ok((config, report))
}

async fn measure_scale(
    db: &Server,
    url: &str,
    args: &BenchIncrementalArgs,
    scale: Scale,
) -> Result<ScaleResult, String> {
    let cfg = summary_config();
    // No pg_cron in benchmark databases: a scheduled refresh would distort every figure.
    store::setup::run(url, &cfg, false)
        .await
        .map_err(|e| e.to_string())?;
    let (config, loaded) = load(url, args, scale, "loading spans (capture off)").await?;
    println!(
        "loaded {} spans in {:.1} s ({:.0} spans/s)",
        loaded.spans,
        loaded.elapsed.as_secs_f64(),
        loaded.spans_per_sec()
    );
    let client = store::db::connect(url).await.map_err(|e| e.to_string())?;

    let refreshes = if scale == Scale::L { 1 } else { 2 };
    let mut full_refresh_secs = Vec::new();
    for i in 0..refreshes {
        let spinner = ProgressBar::new_spinner();
        spinner.set_message(format!("full refresh {}/{refreshes}", i + 1));
        spinner.enable_steady_tick(std::time::Duration::from_millis(200));
        let run = summaries::refresh(&client, RefreshMethod::Concurrently)
            .await
            .map_err(|e| e.to_string())?;
        spinner.finish_and_clear();
        if run.outcome != summaries::RunOutcome::Ok {
            return Err(format!("full refresh failed: {:?}", run.error));
        }
        full_refresh_secs.push(secs(run.duration()));
    }
    println!("full refresh (CONCURRENTLY): {full_refresh_secs:.2?} s");

    let started = Instant::now();
    let backfill = ProgressBar::new(0);
    backfill.set_style(
        ProgressStyle::with_template("{spinner} backfilling [{bar:30}] {pos}/{len} days {msg}")
            .map_err(|e| e.to_string())?
            .progress_chars("=> "),
    );
    let b = backfill.clone();
    store::setup::run_with(url, &cfg, &incremental(), false, &mut |p| {
        b.set_length(p.total);
        b.set_position(p.done);
        b.set_message(format!("{} traces", p.rows));
    })
    .await
    .map_err(|e| e.to_string())?;
    backfill.finish_and_clear();
    let backfill_secs = started.elapsed().as_secs_f64();
    println!("switched to incremental mode in {backfill_secs:.1} s");
    whole_drains(&client, true).await?;
    expect_ok(summaries::refresh(&client, RefreshMethod::Concurrently).await)?;

    let mut cycles = Vec::new();
    let mut next_index = CYCLE_BASE_INDEX;
    for &n in &args.new_spans {
        let cycle = drain_cycle(
            url,
            &client,
            (args.seed, &mut next_index),
            n,
            args.repeats,
            &mut |_| {},
        )
        .await?;
        println!(
            "drain after {n} new spans: {} traces, {:.3?} s",
            cycle.traces, cycle.drain_secs
        );
        cycles.push(cycle);
    }
    // Back to the service's settings for the freshness runs.
    whole_drains(&client, false).await?;

    let mut lag_results = Vec::new();
    for &rate in &args.rates {
        let r = lag::measure(url, &args.lag_settings(), rate).await?;
        report::print_lag(&r);
        lag_results.push(r);
    }

    let capture_overhead = if args.overhead_scales.contains(&scale) {
        Some(overhead(db, args, scale).await?)
    } else {
        None
    };

    Ok(ScaleResult {
        scale: scale.name().into(),
        measured_at: Utc::now(),
        spans: loaded.spans,
        traces: config.traces,
        load_secs: loaded.elapsed.as_secs_f64(),
        load_spans_per_sec: loaded.spans_per_sec(),
        full_refresh_secs,
        backfill_secs,
        cycles,
        lag: lag_results,
        capture_overhead,
    })
}

/// `on`: drains run to the end, so a benchmark times whole drains rather than the
/// scheduler's time budget; off: the service's setting again.
pub(crate) async fn whole_drains(client: &tokio_postgres::Client, on: bool) -> Result<(), String> {
    if on {
        summaries::set_setting(client, keys::DRAIN_MAX_SECS, "3600").await
    } else {
        client
            .execute(
                "DELETE FROM srql_settings WHERE key = $1",
                &[&keys::DRAIN_MAX_SECS],
            )
            .await
            .map(|_| ())
            .map_err(store::DbError::from)
    }
    .map_err(|e| e.to_string())
}

/// Before or after one timed drain of [`drain_cycle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DrainEdge {
    Before,
    After,
}

/// `repeats` times: [`feed`] `n` new spans (trace indices from `next`, seeded by
/// `seed`), then the drain that applies them, timed as srql_refresh_runs records it.
/// `around` is called on either side of each drain, nothing else between.
pub(crate) async fn drain_cycle(
    url: &str,
    client: &tokio_postgres::Client,
    (seed, next): (u64, &mut u64),
    n: u64,
    repeats: usize,
    around: &mut (dyn FnMut(DrainEdge) + Send),
) -> Result<Cycle, String> {
    let mut cycle = Cycle {
        new_spans: n,
        traces: 0,
        drain_secs: Vec::new(),
    };
    for _ in 0..repeats.max(1) {
        let (spans, traces) = feed(url, seed, next, n).await?;
        around(DrainEdge::Before);
        let run = expect_ok(summaries::refresh(client, RefreshMethod::Concurrently).await);
        around(DrainEdge::After);
        let run = run?;
        if run.pending.unwrap_or(0) > 0 {
            return Err(format!("the drain left {:?} entries behind", run.pending));
        }
        cycle.traces = run.rows.unwrap_or(0);
        cycle.drain_secs.push(secs(run.duration()));
        tracing::debug!(spans, traces, "drain cycle");
    }
    Ok(cycle)
}

pub(crate) fn secs(d: Option<Duration>) -> f64 {
    d.map_or(f64::NAN, |d| d.num_microseconds().unwrap_or(0) as f64 / 1e6)
}

pub(crate) fn expect_ok(
    run: Result<summaries::RefreshRun, store::DbError>,
) -> Result<summaries::RefreshRun, String> {
    let run = run.map_err(|e| e.to_string())?;
    if run.outcome == summaries::RunOutcome::Ok {
        Ok(run)
    } else {
        Err(format!(
            "{} run ended {}: {:?}",
            run.method, run.outcome, run.error
        ))
    }
}

/// Writes about `n` spans of new traces timed over the last two minutes, a COPY per
/// [`CYCLE_COPY_SPANS`], their late spans last: what a 1k spans/s feed leaves between
/// two drains. Returns (spans, traces) written.
pub(crate) async fn feed(
    url: &str,
    seed: u64,
    next: &mut u64,
    n: u64,
) -> Result<(u64, u64), String> {
    let client = store::db::connect(url).await.map_err(|e| e.to_string())?;
    let now = Utc::now();
    let (mut on_time, mut late, mut traces) = (Vec::new(), Vec::new(), 0u64);
    while ((on_time.len() + late.len()) as u64) < n {
        let offset = Duration::milliseconds((*next % 120_000) as i64);
        let trace = workload::trace_at(seed, *next, now - offset);
        *next += 1;
        traces += 1;
        for s in trace.spans {
            if s.arrival_delay_ms > 0 {
                late.push(s);
            } else {
                on_time.push(s);
            }
        }
    }
    let all: Vec<_> = on_time.into_iter().chain(late).collect();
    for chunk in all.chunks(CYCLE_COPY_SPANS) {
        copy_spans(&client, chunk, Arrival::At(Utc::now()))
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok((all.len() as u64, traces))
}

/// The capture triggers' cost on a bulk COPY load: the scale point loaded into fresh
/// databases alternately in view mode (no triggers) and in incremental mode, the last
/// incremental one's backlog then drained.
async fn overhead(
    db: &Server,
    args: &BenchIncrementalArgs,
    scale: Scale,
) -> Result<Overhead, String> {
    let (mut off_runs, mut on_runs) = (Vec::new(), Vec::new());
    let (mut spans, mut log_entries, mut backlog_drain_secs) = (0, 0, f64::NAN);
    for _ in 0..args.overhead_repeats.max(1) {
        for capture in [false, true] {
            let name = format!(
                "srql_bench_incr_capture_{}",
                scale.name().to_ascii_lowercase()
            );
            let url = scratch::recreate_database(db, &name).await?;
            let result = async {
                let maintenance = if capture {
                    incremental()
                } else {
                    Maintenance::default()
                };
                store::setup::run_with(&url, &summary_config(), &maintenance, false, &mut |_| {})
                    .await
                    .map_err(|e| e.to_string())?;
                let what = if capture {
                    "loading spans (capture on)"
                } else {
                    "loading spans (capture off)"
                };
                let (_, loaded) = load(&url, args, scale, what).await?;
                if !capture {
                    return Ok::<_, String>((loaded.spans, loaded.spans_per_sec(), 0, f64::NAN));
                }
                let client = store::db::connect(&url).await.map_err(|e| e.to_string())?;
                let entries: i64 = client
                    .query_one("SELECT count(*) FROM srql_summary_log", &[])
                    .await
                    .map_err(|e| e.to_string())?
                    .get(0);
                whole_drains(&client, true).await?;
                let run =
                    expect_ok(summaries::refresh(&client, RefreshMethod::Concurrently).await)?;
                Ok((
                    loaded.spans,
                    loaded.spans_per_sec(),
                    entries,
                    secs(run.duration()),
                ))
            }
            .await;
            let dropped = scratch::drop_database(db, &name).await;
            let (n, rate, entries, drain) = result?;
            dropped?;
            spans = n;
            if capture {
                on_runs.push(rate);
                log_entries = entries;
                backlog_drain_secs = drain;
            } else {
                off_runs.push(rate);
            }
        }
    }
    let result = Overhead {
        spans,
        off_spans_per_sec: report::median(&off_runs),
        on_spans_per_sec: report::median(&on_runs),
        off_runs,
        on_runs,
        log_entries,
        backlog_drain_secs,
    };
    println!(
        "bulk load with capture on: {:.0} spans/s {:.0?} (off: {:.0} {:.0?}); backlog of {} entries drained in {:.1} s",
        result.on_spans_per_sec,
        result.on_runs,
        result.off_spans_per_sec,
        result.off_runs,
        result.log_entries,
        result.backlog_drain_secs
    );
    Ok(result)
}
