//! `srql bench-distributed`: distributed mode on Citus beside one PostgreSQL, in the same
//! run on the same machine. It starts a Citus cluster of its own (a coordinator and
//! workers on 127.0.0.1, from the installed PostgreSQL and Citus, under `--citus-dir`,
//! stopped and removed at the end) and measures both sides alike, incremental summaries
//! on each:
//!
//! 1. OTLP ingest: the `srql bench-otlp` client and receivers into an empty database;
//! 2. bulk load: the workload COPYed through `otel_traces` (as any writer does on Citus:
//!    each span captured, and routed to its shard by the coordinator);
//! 3. the drain of that load's backlog;
//! 4. first-page latencies of the traces tab's queries through the HTTP API (`srql
//!    bench`'s queries and timing);
//! 5. drain cycles after N new spans (`srql bench-incremental`'s feed);
//! 6. freshness under sustained ingest (`srql bench-incremental`'s probes).
//!
//! CPU seconds of the PostgreSQL processes are read from `/proc` around each phase, the
//! coordinator apart from the workers: the per-worker rates the sizing model of
//! docs/scale-out.md is built from. Results merge into bench-results/distributed.json by
//! scale point and are rendered between the `<!-- distributed:start -->` and
//! `<!-- distributed:end -->` markers of BENCHMARKS.md.

mod report;

use std::path::PathBuf;
use std::time::Duration as StdDuration;

use chrono::Utc;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use store::citus_local::{LocalCitus, LocalCitusOptions};
use store::distributed::Distribution;
use store::summaries::{self, RefreshMethod};
use workload::{Scale, WorkloadConfig};

use crate::incremental::lag::{self, LagResult, LagSettings};
use crate::incremental::DrainEdge;
use crate::scratch::{self, Server};
use crate::summaries::first_page::{self, Policies};
use crate::summaries::latency::{LatencySummary, RunPolicy};
use crate::summaries::machine::{cluster_ticks, postmaster_pid, TICKS_PER_SEC};
use crate::summaries::queries::QUERIES;

/// The scratch databases, on both sides. Ours, never input.
const DATABASE: &str = "srql_bench_dist";
const OTLP_DATABASE: &str = "srql_bench_dist_otlp";
/// Untimed requests before the timed ones on the summary path.
const SUMMARY_WARMUP: usize = 10;
/// Far above any request here; only bounds a stuck one.
const HTTP_TIMEOUT: StdDuration = StdDuration::from_secs(600);

#[derive(Debug, Clone, Args)]
pub struct BenchDistributedArgs {
    /// Scale points, comma-separated: S (100k spans), M (1M). Each replaces its own entry
    /// in the results file.
    #[arg(long, value_delimiter = ',', default_value = "S", value_parser = Scale::parse)]
    pub scales: Vec<Scale>,
    /// Spans loaded per scale point instead of the scale's own (a quick try; the results
    /// say how many were loaded).
    #[arg(long)]
    pub spans: Option<u64>,
    /// Citus workers beside the coordinator.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Shards per distributed table (per day partition).
    #[arg(long, default_value_t = 8)]
    pub shard_count: u32,
    /// Where the Citus nodes' data directories go (a directory of this run below it,
    /// removed at the end).
    #[arg(long, default_value = "/var/tmp")]
    pub citus_dir: PathBuf,
    /// Spans sent over OTLP per side (at most the scale point's).
    #[arg(long, default_value_t = 200_000)]
    pub otlp_spans: u64,
    /// Concurrent OTLP/gRPC clients.
    #[arg(long, default_value_t = 4)]
    pub otlp_clients: usize,
    /// The receiver's COPY writers.
    #[arg(long, default_value_t = 2)]
    pub otlp_writers: usize,
    /// Timed runs of each first page on the summary path (after 10 untimed).
    #[arg(long, default_value_t = 50)]
    pub summary_runs: usize,
    /// Most timed runs of each query on the on-the-fly path.
    #[arg(long, default_value_t = 3)]
    pub on_the_fly_runs: usize,
    /// New spans per drain cycle, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    pub new_spans: Vec<u64>,
    /// Drain cycles per volume.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Sustained ingest rates (spans/s) for the freshness runs, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    pub rates: Vec<u64>,
    /// Seconds of measured ingest per rate.
    #[arg(long, default_value_t = 30)]
    pub ingest_secs: u64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Parallel COPY connections for the bulk load.
    #[arg(long, default_value_t = crate::load::DEFAULT_WRITERS)]
    pub writers: usize,
    #[arg(long, default_value = "bench-results/distributed.json")]
    pub out: PathBuf,
    /// The Markdown file whose `<!-- distributed:start -->` section is rewritten.
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub markdown: PathBuf,
    /// A line shown under this run's figures (what else the machine was doing).
    #[arg(long)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub machine: crate::incremental::Machine,
    pub scales: Vec<ScaleResult>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScaleResult {
    pub scale: String,
    pub measured_at: chrono::DateTime<Utc>,
    pub workers: usize,
    pub shard_count: u32,
    #[serde(default)]
    pub note: Option<String>,
    pub single: SideResult,
    pub citus: SideResult,
}

/// CPU seconds of the PostgreSQL processes over one phase.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Cpu {
    /// The single node, or the Citus coordinator.
    pub coordinator_secs: f64,
    /// All workers together (0 on a single node).
    pub workers_secs: f64,
}

/// Spans written in one phase, how fast, and the CPU it took.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rate {
    pub spans: u64,
    pub secs: f64,
    pub spans_per_sec: f64,
    pub cpu: Option<Cpu>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Drain {
    /// Traces recomputed (summary rows written).
    pub traces: i64,
    pub secs: f64,
    pub cpu: Option<Cpu>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FirstPage {
    pub name: String,
    pub title: String,
    pub summaries: Option<LatencySummary>,
    pub on_the_fly: Option<LatencySummary>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrainCycle {
    pub new_spans: u64,
    /// Traces the last drain recomputed.
    pub traces: i64,
    /// Each repeat's drain, as recorded in srql_refresh_runs.
    pub drain_secs: Vec<f64>,
    /// Over all repeats' drains.
    pub cpu: Option<Cpu>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SideResult {
    /// `single` or `citus`.
    pub side: String,
    pub otlp: Rate,
    pub load: Rate,
    pub backlog_drain: Drain,
    pub first_pages: Vec<FirstPage>,
    pub cycles: Vec<DrainCycle>,
    pub lag: Vec<LagResult>,
}

/// Where one side runs.
enum Side<'a> {
    Single(&'a Server),
    Citus(&'a LocalCitus),
}

impl Side<'_> {
    fn name(&self) -> &'static str {
        match self {
            Side::Single(_) => "single",
            Side::Citus(_) => "citus",
        }
    }

    fn distribution(&self) -> Option<Distribution> {
        match self {
            Side::Single(_) => None,
            Side::Citus(_) => Some(Distribution::Citus),
        }
    }

    async fn create_database(&self, name: &str) -> Result<String, String> {
        match self {
            Side::Single(s) => scratch::recreate_database(s, name).await,
            Side::Citus(c) => c.create_database(name).await,
        }
    }

    async fn drop_database(&self, name: &str) -> Result<(), String> {
        match self {
            Side::Single(s) => scratch::drop_database(s, name).await,
            Side::Citus(c) => c.drop_database(name).await,
        }
    }

    /// The postmasters' pids, coordinator (or single node) first; `None` for a server
    /// that is not ours to measure.
    fn postmasters(&self) -> Option<Vec<u32>> {
        match self {
            Side::Single(s) => Some(vec![postmaster_pid(s.data_dir.as_deref()?)?]),
            Side::Citus(c) => c.data_dirs().into_iter().map(postmaster_pid).collect(),
        }
    }

    /// CPU ticks so far, coordinator and workers.
    fn ticks(&self) -> Option<(u64, u64)> {
        let pids = self.postmasters()?;
        let coordinator = cluster_ticks(*pids.first()?)?;
        let workers = pids[1..]
            .iter()
            .map(|&p| cluster_ticks(p))
            .sum::<Option<u64>>()?;
        Some((coordinator, workers))
    }
}

/// CPU used between two readings of [`Side::ticks`].
fn cpu_between(before: Option<(u64, u64)>, after: Option<(u64, u64)>) -> Option<Cpu> {
    let ((c0, w0), (c1, w1)) = (before?, after?);
    Some(Cpu {
        coordinator_secs: c1.saturating_sub(c0) as f64 / TICKS_PER_SEC,
        workers_secs: w1.saturating_sub(w0) as f64 / TICKS_PER_SEC,
    })
}

fn add_cpu(a: Option<Cpu>, b: Option<Cpu>) -> Option<Cpu> {
    let (a, b) = (a?, b?);
    Some(Cpu {
        coordinator_secs: a.coordinator_secs + b.coordinator_secs,
        workers_secs: a.workers_secs + b.workers_secs,
    })
}

pub async fn run(db: &Server, args: &BenchDistributedArgs) -> Result<(), String> {
    let mut results = report::read(&args.out).unwrap_or(Results {
        machine: crate::incremental::machine(&db.url).await?,
        scales: Vec::new(),
    });
    results.machine = crate::incremental::machine(&db.url).await?;
    let base_dir = args
        .citus_dir
        .join(format!("srql-bench-citus-{}", std::process::id()));
    println!(
        "starting a Citus cluster: a coordinator and {} workers under {}",
        args.workers,
        base_dir.display()
    );
    let citus = LocalCitus::start(&LocalCitusOptions {
        base_dir,
        workers: args.workers.max(1),
        shard_count: args.shard_count.max(1),
        durable: true,
        remove_on_stop: true,
    })
    .await?;
    let mut scales = args.scales.clone();
    scales.sort_by_key(|s| s.spans());
    scales.dedup();
    for scale in scales {
        let spans = args.spans.unwrap_or(scale.spans());
        println!(
            "== scale {}: {spans} spans, single node then Citus",
            scale.name()
        );
        let single = measure_side(&Side::Single(db), args, spans).await?;
        let distributed = measure_side(&Side::Citus(&citus), args, spans).await?;
        let r = ScaleResult {
            scale: scale.name().into(),
            measured_at: Utc::now(),
            workers: citus.workers.len(),
            shard_count: args.shard_count.max(1),
            note: args.note.clone(),
            single,
            citus: distributed,
        };
        println!("{}", report::table(&r));
        results.scales.retain(|s| s.scale != r.scale);
        results.scales.push(r);
        results
            .scales
            .sort_by_key(|s| ["S", "M", "L"].iter().position(|n| *n == s.scale));
        // After every scale point, so a failure at M keeps what S measured.
        report::write(&results, &args.out, &args.markdown)?;
    }
    drop(citus);
    println!(
        "Citus cluster stopped and removed; results in {} and {}",
        args.out.display(),
        args.markdown.display()
    );
    Ok(())
}

/// The schema in incremental mode, distributed on Citus; no pg_cron (a scheduled job
/// would distort the figures; the service's scheduler stands in where one is needed).
async fn set_up(side: &Side<'_>, url: &str) -> Result<(), String> {
    store::setup::run_distributed(
        url,
        &crate::incremental::summary_config(),
        &crate::incremental::incremental(),
        false,
        &mut |_| {},
        side.distribution(),
    )
    .await
    .map(|_| ())
    .map_err(|e| format!("setting up the {} database: {e}", side.name()))
}

async fn measure_side(
    side: &Side<'_>,
    args: &BenchDistributedArgs,
    spans: u64,
) -> Result<SideResult, String> {
    println!("-- {}", side.name());
    let otlp = {
        let url = side.create_database(OTLP_DATABASE).await?;
        let sent = otlp_ingest(side, &url, args, spans).await;
        let dropped = side.drop_database(OTLP_DATABASE).await;
        let sent = sent?;
        dropped?;
        sent
    };
    println!(
        "   OTLP ingest: {} spans at {:.0} spans/s",
        otlp.spans, otlp.spans_per_sec
    );
    let url = side.create_database(DATABASE).await?;
    let measured = measure_loaded(side, &url, args, spans, otlp).await;
    // Dropped whatever happened, so a rerun starts clean.
    let dropped = side.drop_database(DATABASE).await;
    let measured = measured?;
    dropped?;
    Ok(measured)
}

async fn otlp_ingest(
    side: &Side<'_>,
    url: &str,
    args: &BenchDistributedArgs,
    spans: u64,
) -> Result<Rate, String> {
    set_up(side, url).await?;
    let client = store::db::connect(url).await.map_err(|e| e.to_string())?;
    let config = store::db::parse_url(url).map_err(|e| e.to_string())?;
    let opts = crate::otlp_ingest::BenchOptions {
        spans: args.otlp_spans.min(spans).max(1),
        clients: args.otlp_clients.max(1),
        writers: args.otlp_writers.max(1),
        seed: args.seed,
    };
    let spinner = crate::summaries::progress::spinner(&format!(
        "OTLP ingest of {} spans ({})",
        opts.spans,
        side.name()
    ));
    let before = side.ticks();
    let report = crate::otlp_ingest::send(config, &client, &opts).await?;
    let cpu = cpu_between(before, side.ticks());
    spinner.finish_and_clear();
    Ok(Rate {
        spans: report.spans,
        secs: report.elapsed.as_secs_f64(),
        spans_per_sec: report.spans_per_sec(),
        cpu,
    })
}

async fn measure_loaded(
    side: &Side<'_>,
    url: &str,
    args: &BenchDistributedArgs,
    spans: u64,
    otlp: Rate,
) -> Result<SideResult, String> {
    let err = |e: store::DbError| e.to_string();
    set_up(side, url).await?;
    let config = WorkloadConfig::for_spans(
        args.seed,
        spans,
        Utc::now() - workload::DEFAULT_RANGE,
        Utc::now(),
    );
    let bar = ProgressBar::new(spans);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} bulk load through otel_traces ({}) [{{bar:30}}] {{human_pos}}/{{human_len}} ({{per_sec}}, eta {{eta}})",
            side.name()
        ))
        .map_err(|e| e.to_string())?
        .progress_chars("=> "),
    );
    let b = bar.clone();
    let before = side.ticks();
    let loaded = crate::load::bulk_with(
        url,
        config,
        args.writers,
        crate::load::DayLoad::ThroughParent,
        move |n| b.set_position(n),
    )
    .await
    .map_err(err)?;
    let load_cpu = cpu_between(before, side.ticks());
    bar.finish_and_clear();
    let load = Rate {
        spans: loaded.spans,
        secs: loaded.elapsed.as_secs_f64(),
        spans_per_sec: loaded.spans_per_sec(),
        cpu: load_cpu,
    };
    println!(
        "   bulk load: {} spans at {:.0} spans/s",
        load.spans, load.spans_per_sec
    );

    let client = store::db::connect(url).await.map_err(err)?;
    crate::incremental::whole_drains(&client, true).await?;
    let spinner = crate::summaries::progress::spinner("draining the load's backlog");
    let before = side.ticks();
    let run = crate::incremental::expect_ok(
        summaries::refresh(&client, RefreshMethod::Concurrently).await,
    )?;
    let backlog_drain = Drain {
        traces: run.rows.unwrap_or(0),
        secs: crate::incremental::secs(run.duration()),
        cpu: cpu_between(before, side.ticks()),
    };
    spinner.finish_and_clear();
    if run.pending.unwrap_or(0) > 0 {
        return Err(format!("the drain left {:?} entries behind", run.pending));
    }
    println!(
        "   backlog drain: {} traces in {:.2} s",
        backlog_drain.traces, backlog_drain.secs
    );
    let spinner = crate::summaries::progress::spinner("VACUUM (ANALYZE)");
    client
        .batch_execute("VACUUM (ANALYZE) otel_traces, otel_trace_summaries")
        .await
        .map_err(|e| format!("VACUUM (ANALYZE): {e}"))?;
    spinner.finish_and_clear();

    let first_pages = first_pages(url, args).await?;
    for p in &first_pages {
        println!(
            "   {:<34} p50 {:>8} summaries, {:>8} on the fly",
            p.title,
            report::ms(p.summaries.map(|l| l.p50_ms)),
            report::ms(p.on_the_fly.map(|l| l.p50_ms)),
        );
    }

    let cycles = drain_cycles(side, url, &client, args).await?;
    crate::incremental::whole_drains(&client, false).await?;

    let mut lags = Vec::new();
    let settings = LagSettings {
        seed: args.seed,
        delay_scale: 0.01,
        ingest_secs: args.ingest_secs,
    };
    for &rate in &args.rates {
        let r = lag::measure(url, &settings, rate).await?;
        println!(
            "   freshness at {rate} spans/s (achieved {:.0}): lag p50 {:.2} s, p99 {:.2} s; {} drains, p50 {:.3} s{}",
            r.achieved_rate,
            r.p50,
            r.p99,
            r.drains,
            r.drain_p50_secs,
            if r.exact { "" } else { "; summaries NOT exact" }
        );
        if !r.exact || r.lost > 0 {
            return Err(format!(
                "{}: after the freshness run at {rate} spans/s the summaries are {} and {} probes were never seen",
                side.name(),
                if r.exact { "exact" } else { "not exact" },
                r.lost
            ));
        }
        lags.push(r);
    }
    Ok(SideResult {
        side: side.name().into(),
        otlp,
        load,
        backlog_drain,
        first_pages,
        cycles,
        lag: lags,
    })
}

async fn first_pages(url: &str, args: &BenchDistributedArgs) -> Result<Vec<FirstPage>, String> {
    let policies = Policies {
        summaries: RunPolicy {
            warmup: SUMMARY_WARMUP,
            min_runs: args.summary_runs.max(1),
            max_runs: args.summary_runs.max(1),
            budget_secs: 0.0,
        },
        on_the_fly: RunPolicy {
            warmup: 0,
            min_runs: 1,
            max_runs: args.on_the_fly_runs.max(1),
            budget_secs: 5.0,
        },
        on_the_fly_warmup: 1,
        on_the_fly_target_min_runs: 1,
    };
    let service = crate::summaries::Service::start(url).await?;
    let first = QUERIES
        .iter()
        .filter(|q| q.is_first_page())
        .collect::<Vec<_>>();
    let measured =
        first_page::run_queries(service.addr, HTTP_TIMEOUT, policies, first.into_iter()).await;
    service.stop().await?;
    Ok(measured?
        .into_iter()
        .map(|q| FirstPage {
            name: q.name.into(),
            title: q.title.into(),
            summaries: q.summaries.latency().copied(),
            on_the_fly: q.on_the_fly.latency().copied(),
        })
        .collect())
}

async fn drain_cycles(
    side: &Side<'_>,
    url: &str,
    client: &tokio_postgres::Client,
    args: &BenchDistributedArgs,
) -> Result<Vec<DrainCycle>, String> {
    let mut cycles = Vec::new();
    let mut next_index = crate::incremental::CYCLE_BASE_INDEX;
    for &n in &args.new_spans {
        let mut cpu = Some(Cpu::default());
        let mut before = None;
        let cycle = crate::incremental::drain_cycle(
            url,
            client,
            (args.seed, &mut next_index),
            n,
            args.repeats,
            &mut |edge| match edge {
                DrainEdge::Before => before = side.ticks(),
                DrainEdge::After => cpu = add_cpu(cpu, cpu_between(before, side.ticks())),
            },
        )
        .await?;
        println!(
            "   drain after {n} new spans: {} traces, {:.3?} s",
            cycle.traces, cycle.drain_secs
        );
        cycles.push(DrainCycle {
            new_spans: n,
            traces: cycle.traces,
            drain_secs: cycle.drain_secs,
            cpu,
        });
    }
    Ok(cycles)
}
