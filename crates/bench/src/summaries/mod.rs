//! `srql bench`: what the trace summaries buy (first-page latency against on-the-fly
//! aggregation) and what they cost (refresh time, readers during a refresh, storage), at
//! the scale points of docs/workload.md, measured through the real HTTP API.
//!
//! Each scale point gets a database of its own on the same server, dropped afterwards,
//! so the service's data is never touched and every point starts from nothing.
//! `--summary-mode` picks the mode measured: the materialized view (refreshed), or the
//! incremental table (switched to after the load, then drained; `drain.rs`), each with
//! its own results files and BENCHMARKS.md section (`mode.rs`).

pub(crate) mod api;
mod drain;
pub(crate) mod first_page;
mod format;
pub(crate) mod http_client;
pub(crate) mod latency;
pub(crate) mod machine;
mod mode;
mod plain_aggregation;
pub(crate) mod plot;
pub(crate) mod progress;
pub(crate) mod queries;
pub(crate) mod refresh;
pub(crate) mod report;
mod results;
pub(crate) mod storage;
mod targets;

use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use clap::Args;
use store::summaries::{Maintenance, SummaryMode};
use tokio::sync::watch;
use workload::Scale;

use crate::scratch::{self, Server};
use first_page::Policies;
use latency::RunPolicy;
use results::{BenchResults, LoadResult, ScaleResult, Settings};

/// Untimed requests before the timed ones on the summary path: enough to warm the
/// connection pool and the index pages.
const SUMMARY_WARMUP: usize = 20;
/// Untimed on-the-fly runs per scale point: one brings the spans every on-the-fly query
/// reads into memory.
const ON_THE_FLY_WARMUP: usize = 1;
/// Database connections of the in-process service: more than the benchmark's two
/// concurrent clients ever use, so nobody waits for the pool.
const POOL_SIZE: usize = 8;

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Scale points, comma-separated: S (100k spans), M (1M), L (10M; about 1.34M traces).
    #[arg(long, value_delimiter = ',', default_value = "S,M,L", value_parser = Scale::parse)]
    pub scales: Vec<Scale>,
    /// Load one point of this many spans instead of the scale points (quick checks; page
    /// 100 needs about 20,000).
    #[arg(long, conflicts_with = "scales")]
    pub spans: Option<u64>,
    /// Timed runs of each query on the summary path (after 20 warm-up runs); also the
    /// number of idle reads the refresh phase compares against.
    #[arg(long, default_value_t = 200)]
    pub summary_runs: usize,
    /// Most timed runs of each query on the on-the-fly path.
    #[arg(long, default_value_t = 30)]
    pub on_the_fly_runs: usize,
    /// Fewest timed runs of each query on the on-the-fly path (at L one takes tens of
    /// seconds).
    #[arg(long, default_value_t = 1)]
    pub on_the_fly_min_runs: usize,
    /// Fewest timed on-the-fly runs of the last-24-hours query, which the speed-up target
    /// is about.
    #[arg(long, default_value_t = 3)]
    pub on_the_fly_target_runs: usize,
    /// Once past the fewest runs, start no more on-the-fly runs of a query after its
    /// timed runs took this many seconds (keeps L within its time budget).
    #[arg(long, default_value_t = 5.0)]
    pub on_the_fly_budget: f64,
    /// Seconds one request may take; a query that times out is reported as skipped.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Workload seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Parallel COPY connections for the load.
    #[arg(long, default_value_t = crate::load::DEFAULT_WRITERS)]
    pub writers: usize,
    /// Incremental mode: new spans written before each timed drain.
    #[arg(long, default_value_t = 10_000)]
    pub drain_spans: u64,
    /// Incremental mode: timed drains, each with reads running.
    #[arg(long, default_value_t = 3)]
    pub drains: usize,
    /// Where bench.json and latency.svg go (and notes.md is read from, if present); in
    /// incremental mode bench-incremental.json, latency-incremental.svg and
    /// notes-incremental.md.
    #[arg(long, default_value = "bench-results")]
    pub out_dir: PathBuf,
    /// The Markdown file whose `<!-- bench:start -->` section is rewritten
    /// (`<!-- bench-incremental:start -->` in incremental mode, created after the other).
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub markdown: PathBuf,
}

/// One point measured: a scale point, or the size `--spans` gave.
#[derive(Debug, Clone)]
struct Point {
    name: String,
    spans: u64,
}

fn points(args: &BenchArgs) -> Vec<Point> {
    if let Some(spans) = args.spans {
        return vec![Point {
            name: format!("{spans} spans"),
            spans,
        }];
    }
    let mut scales = args.scales.clone();
    scales.sort_by_key(|s| s.spans());
    scales.dedup();
    scales
        .into_iter()
        .map(|s| Point {
            name: s.name().to_string(),
            spans: s.spans(),
        })
        .collect()
}

/// `maintenance`: the summary mode measured (`--summary-mode`).
pub async fn bench(
    db: &Server,
    cfg: &store::summaries::SummaryConfig,
    maintenance: &Maintenance,
    args: &BenchArgs,
) -> Result<(), String> {
    let started = Instant::now();
    let started_at = Utc::now();
    let policies = policies(args);
    let points = points(args);
    let outputs = mode::outputs(maintenance.mode, &args.out_dir);
    let mut results = BenchResults {
        started_at,
        command: std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        complete: false,
        summary_mode: maintenance.mode,
        total_secs: 0.0,
        machine: machine::Machine::describe(&db.url).await?,
        settings: Settings {
            seed: args.seed,
            writers: args.writers,
            timeout_secs: args.timeout,
            policies,
            idle_reads: args.summary_runs,
        },
        scales: Vec::new(),
        targets: Vec::new(),
    };
    let postmaster = db.data_dir.as_deref().and_then(machine::postmaster_pid);
    for (i, point) in points.iter().enumerate() {
        println!(
            "== scale {}: {} spans over {} days, {}",
            point.name,
            point.spans,
            workload::DEFAULT_RANGE.num_days(),
            mode::describe(maintenance.mode)
        );
        let r = run_scale(db, cfg, maintenance, args, policies, point, postmaster).await?;
        print_scale(&r);
        results.scales.push(r);
        results.complete = i + 1 == points.len();
        results.total_secs = started.elapsed().as_secs_f64();
        results.targets = targets::check(&results.scales, started.elapsed(), maintenance.mode);
        // Written after every scale point, so a failure at L keeps what S and M measured.
        write_outputs(&results, args, &outputs)?;
    }
    for t in &results.targets {
        let met = match t.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None if t.measured.starts_with(targets::NOT_APPLICABLE) => "not applicable",
            None => "not measured",
        };
        println!("target: {} -- {} -- {met}", t.target, t.measured);
    }
    println!(
        "total time {}; results in {}, {} and {}",
        report::fmt_secs(started.elapsed().as_secs_f64()),
        outputs.json.display(),
        outputs.svg.display(),
        args.markdown.display()
    );
    Ok(())
}

fn policies(args: &BenchArgs) -> Policies {
    Policies {
        summaries: RunPolicy {
            warmup: SUMMARY_WARMUP,
            min_runs: args.summary_runs,
            max_runs: args.summary_runs,
            budget_secs: 0.0,
        },
        on_the_fly: RunPolicy {
            warmup: 0,
            min_runs: args.on_the_fly_min_runs.min(args.on_the_fly_runs),
            max_runs: args.on_the_fly_runs,
            budget_secs: args.on_the_fly_budget,
        },
        on_the_fly_warmup: ON_THE_FLY_WARMUP,
        on_the_fly_target_min_runs: args.on_the_fly_target_runs,
    }
}

async fn run_scale(
    db: &Server,
    cfg: &store::summaries::SummaryConfig,
    maintenance: &Maintenance,
    args: &BenchArgs,
    policies: Policies,
    point: &Point,
    postmaster: Option<u32>,
) -> Result<ScaleResult, String> {
    let tag: String = point
        .name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let name = format!("srql_bench_{}", tag.to_ascii_lowercase());
    let url = scratch::recreate_database(db, &name).await?;
    let before = machine::CpuSample::take(postmaster);
    let result = measure_scale(&url, cfg, maintenance, args, policies, point).await;
    let after = machine::CpuSample::take(postmaster);
    // Dropped whatever happened: a rerun starts clean and L's gigabytes are freed.
    let dropped = scratch::drop_database(db, &name).await;
    let mut result = result?;
    dropped?;
    result.other_cpu_share = after
        .zip(before)
        .and_then(|(a, b)| a.others_share_since(&b));
    Ok(result)
}

/// How the summaries were set up after the load, and what to time for them afterwards.
enum Setup {
    /// The view's first population, timed as a plain refresh.
    View {
        plain_refresh: Duration,
    },
    Incremental(drain::Switched),
}

/// What the maintenance phase measured, in the mode's own terms.
enum Maintained {
    Refresh(refresh::RefreshResult),
    Drain(drain::DrainResult),
}

async fn measure_scale(
    url: &str,
    cfg: &store::summaries::SummaryConfig,
    maintenance: &Maintenance,
    args: &BenchArgs,
    policies: Policies,
    point: &Point,
) -> Result<ScaleResult, String> {
    let started = Instant::now();
    let view = maintenance.mode == SummaryMode::MaterializedView;
    let scale_point = crate::load::ScalePoint {
        spans: point.spans,
        seed: args.seed,
        writers: args.writers,
        extra: &[],
        // Incremental mode backfills its table from the spans; a view first would be
        // built only to be dropped at the switch.
        populate: view,
    };
    let crate::load::ScalePointReport {
        loaded,
        vacuum_secs,
        plain_refresh,
    } = crate::load::scale_point(url, cfg, &scale_point).await?;
    let setup = if view {
        Setup::View {
            plain_refresh: plain_refresh.ok_or("the summaries were not built")?,
        }
    } else {
        Setup::Incremental(drain::switch(url, cfg, maintenance).await?)
    };
    let storage = storage::measure(url).await?;

    let timeout = Duration::from_secs(args.timeout);
    let service = Service::start(url).await?;
    let measured = async {
        let queries = first_page::run(service.addr, timeout, policies).await?;
        // Right after the on-the-fly runs, over the same warm spans.
        let plain = plain_aggregation::measure(url, policies.plain_aggregation()).await?;
        let maintained = match setup {
            Setup::View { plain_refresh } => Maintained::Refresh(
                refresh::run(url, service.addr, timeout, args.summary_runs, plain_refresh).await?,
            ),
            Setup::Incremental(switched) => {
                let plan = drain::DrainPlan {
                    seed: args.seed,
                    new_spans: args.drain_spans,
                    drains: args.drains,
                    idle_reads: args.summary_runs,
                };
                Maintained::Drain(drain::run(url, service.addr, timeout, plan, switched).await?)
            }
        };
        Ok::<_, String>((queries, plain, maintained))
    }
    .await;
    service.stop().await?;
    let (queries, plain_aggregation_24h, maintained) = measured?;
    let (refresh, drain) = match maintained {
        Maintained::Refresh(r) => (Some(r), None),
        Maintained::Drain(d) => (None, Some(d)),
    };

    Ok(ScaleResult {
        scale: point.name.clone(),
        target_spans: point.spans,
        load: LoadResult {
            spans: loaded.spans,
            traces: loaded.traces,
            secs: loaded.elapsed.as_secs_f64(),
            spans_per_sec: loaded.spans_per_sec(),
            writers: args.writers,
            vacuum_secs,
        },
        queries,
        plain_aggregation_24h,
        refresh,
        drain,
        storage,
        secs: started.elapsed().as_secs_f64(),
        other_cpu_share: None,
    })
}

/// The HTTP service, in this process, on a loopback port of its own.
pub(crate) struct Service {
    pub(crate) addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Service {
    pub(crate) async fn start(url: &str) -> Result<Self, String> {
        let pool = store::db::pool(url, POOL_SIZE).map_err(|e| e.to_string())?;
        // The benchmark times both paths on the same queries, one at a time, at scales
        // where an on-the-fly aggregation may run for minutes.
        let config = server::ServiceConfig {
            allow_source_override: true,
            query_timeout: std::time::Duration::from_secs(3600),
            ..server::ServiceConfig::default()
        };
        let state = server::AppState::new(pool, config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot listen on a loopback port: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("listening address: {e}"))?;
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(server::run(listener, state, stop_rx));
        Ok(Self { addr, stop, task })
    }

    pub(crate) async fn stop(self) -> Result<(), String> {
        let _ = self.stop.send(true);
        self.task
            .await
            .map_err(|e| format!("service task: {e}"))?
            .map_err(|e| format!("service: {e}"))
    }
}

fn print_scale(r: &ScaleResult) {
    let fmt = |q: &first_page::QueryLatency, path: api::Path| {
        q.path(path).latency().map_or_else(
            || "skipped".into(),
            |l| format!("{} ms", report::fmt_ms(l.p50_ms)),
        )
    };
    println!(
        "   loaded {} spans ({} traces) at {:.0} spans/s; took {}",
        r.load.spans,
        r.load.traces,
        r.load.spans_per_sec,
        report::fmt_secs(r.secs)
    );
    if let Some(l) = r.plain_aggregation_24h.latency() {
        println!(
            "   {:<34} p50 {:>10} (the on-the-fly path's yardstick)",
            "plain GROUP BY trace_id, 24 h",
            format!("{} ms", report::fmt_ms(l.p50_ms))
        );
    }
    for q in &r.queries {
        println!(
            "   {:<34} p50 {:>10} summaries, {:>10} on the fly{}",
            q.title,
            fmt(q, api::Path::Summaries),
            fmt(q, api::Path::OnTheFly),
            q.speedup_p50
                .map(|x| format!(" ({x:.0}x)"))
                .unwrap_or_default()
        );
    }
    let p99 = |l: &Option<latency::LatencySummary>| {
        l.map_or_else(|| "-".into(), |l| report::fmt_ms(l.p99_ms))
    };
    if let Some(f) = &r.refresh {
        println!(
            "   refresh: plain {}, concurrently {}; read p99 idle {} ms, during {} ms",
            report::fmt_secs(f.plain_secs),
            report::fmt_secs(f.concurrent_secs),
            p99(&f.idle_reads),
            p99(&f.reads_during_concurrent),
        );
    }
    if let Some(d) = &r.drain {
        let drains: Vec<String> = d
            .drains
            .iter()
            .map(|x| {
                format!(
                    "{} ms ({} traces)",
                    report::fmt_ms(x.secs * 1000.0),
                    x.traces
                )
            })
            .collect();
        println!(
            "   switch to incremental {} (then a drain of {} ms); drains after {} new spans: {}; \
             read p99 idle {} ms, during drains {} ms",
            report::fmt_secs(d.switch_secs),
            report::fmt_ms(d.first_drain_secs * 1000.0),
            d.new_spans,
            drains.join(", "),
            p99(&d.idle_reads),
            p99(&d.reads_during_drains),
        );
    }
}

fn write_outputs(
    results: &BenchResults,
    args: &BenchArgs,
    outputs: &mode::Outputs,
) -> Result<(), String> {
    let dir = &args.out_dir;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let json = serde_json::to_string_pretty(results).map_err(|e| e.to_string())?;
    write_file(&outputs.json, &(json + "\n"))?;
    write_file(&outputs.svg, &plot::latency_svg(&results.scales))?;
    let notes = std::fs::read_to_string(&outputs.notes).ok();
    let section = report::render(
        results,
        &report::Links {
            json: &link_from(&args.markdown, &outputs.json),
            svg: &link_from(&args.markdown, &outputs.svg),
            notes: notes.as_deref(),
        },
    );
    crate::markdown_section::rewrite_after(&args.markdown, outputs.section, outputs.after, &section)
}

pub(crate) fn write_file(path: &FsPath, text: &str) -> Result<(), String> {
    // `--out-dir` may name a directory that does not exist yet.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// `target` as a link from the Markdown file: relative when it lies beside or below it.
pub(crate) fn link_from(markdown: &FsPath, target: &FsPath) -> String {
    let base = markdown
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(FsPath::new("."));
    match (base.canonicalize(), target.canonicalize()) {
        (Ok(base), Ok(full)) => full
            .strip_prefix(&base)
            .map_or_else(|_| full.display().to_string(), |p| p.display().to_string()),
        _ => target.display().to_string(),
    }
}
