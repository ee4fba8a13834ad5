//! `srql bench-soak`: the service under a steady mixed load. Many query clients loop over
//! the traces tab's requests while OTLP ingest runs at a fixed rate, for a fixed window;
//! reported: requests per second, latency overall and per request kind, errors, the ingest
//! rate reached, refusals, and acknowledged spans that did not reach the database.
//!
//! The run gets a database of its own on the same server, dropped afterwards; the service
//! is the one `srql serve` runs, started by the binary through [`StartService`]. Every request and every wait is bounded,
//! so a service that stalls yields errors in the report, never a benchmark that hangs.

mod clients;
mod ingest;
mod lost;
mod mix;
mod plot;
mod report;
mod results;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use clap::Args;
use workload::Scale;

use crate::scratch::{self, Server};
use crate::summaries::{link_from, machine, progress, write_file};
use results::{Load, SoakResults};

/// The run's database, beside the service's own.
const DATABASE: &str = "srql_bench_soak";
/// Trace ids the lookups rotate through: the most recent traces of the load.
const LOOKUP_TRACES: i64 = 256;
/// Bound on the service's shutdown after the window (answering what is in flight,
/// writing accepted spans); past it the run reports what it has.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on looking up the acknowledged spans (index lookups, well under a minute at
/// 10k spans/s for 60 s).
const LOST_CHECK_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Args)]
pub struct BenchSoakArgs {
    /// Scale point of the loaded data: S (100k spans), M (1M), L (10M).
    #[arg(long, default_value = "M", value_parser = Scale::parse)]
    pub scale: Scale,
    /// Load this many spans instead of the scale point's (for quick checks).
    #[arg(long)]
    pub spans: Option<u64>,
    /// Concurrent query clients, each on its own connection.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Length of the measured window.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// OTLP spans per second sent during the window (0: no ingest).
    #[arg(long, default_value_t = 10_000)]
    pub otlp_rate: u64,
    /// Seconds a query or an OTLP export may take before it counts as an error.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Parallel COPY connections for the load.
    #[arg(long, default_value_t = crate::load::DEFAULT_WRITERS)]
    pub writers: usize,
    /// Where soak.json and soak.svg go (and soak-notes.md is read from, if present).
    #[arg(long, default_value = "bench-results")]
    pub out_dir: PathBuf,
    /// Rewrite the `<!-- soak:start -->` section of --markdown with this run.
    #[arg(long)]
    pub write_benchmarks: bool,
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub markdown: PathBuf,
}

/// The service under test, running on the run's database.
pub struct Service {
    /// Where the query API listens.
    pub addr: SocketAddr,
    /// Where the OTLP/gRPC receiver listens.
    pub otlp_grpc: SocketAddr,
    /// Stops the service once polled: answers what is in flight, writes accepted spans.
    pub stop: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// Starts the service as `srql serve` runs it (every listener on an ephemeral loopback
/// port, no API key) on the database at the URL. The binary provides it: how the service
/// is put together is its business, and no library depends on it.
pub type StartService =
    dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<Service, String>> + Send>> + Send + Sync;

/// `maintenance`: the summary mode the service runs in (`--summary-mode`), switched to
/// after the load as `srql migrate` would switch (a switch to incremental backfills).
pub async fn run(
    db: &Server,
    cfg: &store::summaries::SummaryConfig,
    maintenance: &store::summaries::Maintenance,
    args: &BenchSoakArgs,
    start: &StartService,
) -> Result<(), String> {
    if args.clients == 0 || args.seconds == 0 || args.timeout == 0 {
        return Err("--clients, --seconds and --timeout must be at least 1".into());
    }
    let started = Instant::now();
    let started_at = Utc::now();
    let machine = machine::Machine::describe(&db.url).await?;
    let postmaster = db.data_dir.as_deref().and_then(machine::postmaster_pid);
    let url = scratch::recreate_database(db, DATABASE).await?;
    let measured = measure(&url, cfg, maintenance, args, postmaster, start).await;
    // Dropped whatever happened, so a rerun starts clean.
    let dropped = scratch::drop_database(db, DATABASE).await;
    let (load, window, summary_mode) = measured?;
    dropped?;
    let results = SoakResults {
        started_at,
        command: std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        machine,
        other_cpu_share: window.other_cpu_share,
        settings: results::Settings {
            scale: args
                .spans
                .map_or_else(|| args.scale.name().to_string(), |n| format!("{n} spans")),
            clients: args.clients,
            seconds: args.seconds,
            otlp_rate: args.otlp_rate,
            timeout_secs: args.timeout,
            seed: args.seed,
            summary_mode,
        },
        load,
        queries: window.queries,
        ingest: window.ingest,
        timeline: window.timeline,
        total_secs: started.elapsed().as_secs_f64(),
    };
    print_summary(&results);
    write_outputs(&results, args)
}

/// What the window measured.
struct Window {
    queries: results::Queries,
    ingest: results::Ingest,
    timeline: Vec<results::Second>,
    other_cpu_share: Option<f64>,
}

/// Also returns the summary mode the database was in when the window ended, read back
/// from it rather than taken from the flag.
async fn measure(
    url: &str,
    cfg: &store::summaries::SummaryConfig,
    maintenance: &store::summaries::Maintenance,
    args: &BenchSoakArgs,
    postmaster: Option<u32>,
    start: &StartService,
) -> Result<(Load, Window, store::summaries::SummaryMode), String> {
    let point = crate::load::ScalePoint {
        spans: args.spans.unwrap_or(args.scale.spans()),
        seed: args.seed,
        writers: args.writers,
        extra: &[],
        populate: true,
    };
    let loaded = crate::load::scale_point(url, cfg, &point).await?.loaded;
    crate::steady_state::as_a_running_service_in(url, cfg, maintenance).await?;
    let trace_ids = lookup_trace_ids(url).await?;
    let load = Load {
        spans: loaded.spans,
        traces: loaded.traces,
        secs: loaded.elapsed.as_secs_f64(),
    };

    // The benchmark's own database, made by the superuser: the service runs on it as
    // that user for both parts.
    let service = start(url.to_string()).await?;
    let grpc = service.otlp_grpc;
    let before = machine::CpuSample::take(postmaster);
    let window = drive(service.addr, grpc, trace_ids, args).await;
    let after = machine::CpuSample::take(postmaster);
    if tokio::time::timeout(STOP_TIMEOUT, service.stop)
        .await
        .is_err()
    {
        tracing::warn!("the service did not stop within {STOP_TIMEOUT:?}; measuring anyway");
    }
    let (samples, outcome, secs) = window?;
    let client = store::db::connect(url).await.map_err(|e| e.to_string())?;
    let summary_mode = store::summaries::stored_maintenance(&client)
        .await
        .map_err(|e| format!("reading the summary mode: {e}"))?
        .mode;

    let bar = progress::spinner("looking up every acknowledged span");
    let since = Utc::now() - chrono::Duration::hours(1) - chrono::Duration::seconds(secs as i64);
    let lost_spans =
        tokio::time::timeout(LOST_CHECK_TIMEOUT, lost::count(url, &outcome.acked, since))
            .await
            .map_err(|_| {
                format!("the acknowledged spans were not checked within {LOST_CHECK_TIMEOUT:?}")
            })??;
    bar.finish_and_clear();
    let acked_spans = outcome.acked.len() as u64;
    Ok((
        load,
        Window {
            queries: results::queries(&samples, secs),
            timeline: results::timeline(&samples, args.seconds),
            ingest: results::Ingest {
                target_spans_per_sec: args.otlp_rate,
                offered_spans: outcome.offered_spans,
                acked_spans,
                // Over the window the pacer keeps to (it stops at the deadline, while a
                // query that times out may end later), so it compares with the target.
                acked_spans_per_sec: acked_spans as f64 / args.seconds as f64,
                requests: outcome.requests,
                acked_requests: outcome.acked_requests,
                refused: outcome.refused,
                failed_requests: outcome.failed_requests,
                lost_spans,
                first_error: outcome.first_error,
            },
            other_cpu_share: after
                .zip(before)
                .and_then(|(a, b)| a.others_share_since(&b)),
        },
        summary_mode,
    ))
}

async fn lookup_trace_ids(url: &str) -> Result<Arc<Vec<String>>, String> {
    let client = store::db::connect(url).await.map_err(|e| e.to_string())?;
    let ids: Vec<String> = client
        .query(
            "SELECT trace_id FROM otel_trace_summaries ORDER BY timestamp DESC LIMIT $1",
            &[&LOOKUP_TRACES],
        )
        .await
        .map_err(|e| format!("sampling trace ids: {e}"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if ids.is_empty() {
        return Err("the summaries hold no trace to look up: load some spans".into());
    }
    Ok(Arc::new(ids))
}

/// The window: clients and ingest side by side until the deadline, with progress.
/// Returns the samples, the ingest outcome and the window's length in seconds.
async fn drive(
    api: std::net::SocketAddr,
    grpc: std::net::SocketAddr,
    trace_ids: Arc<Vec<String>>,
    args: &BenchSoakArgs,
) -> Result<(Vec<results::Sample>, ingest::Outcome, f64), String> {
    let timeout = Duration::from_secs(args.timeout);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let query_counters = Arc::new(clients::Counters::default());
    let plan = Arc::new(clients::Plan {
        addr: api,
        started,
        deadline,
        timeout,
        trace_ids,
        counters: query_counters.clone(),
    });
    let mut tasks: Vec<_> = (0..args.clients)
        .map(|id| tokio::spawn(clients::run(id, plan.clone())))
        .collect();
    let ingest_counters = Arc::new(ingest::Counters::default());
    let ingest_task = (args.otlp_rate > 0).then(|| {
        tokio::spawn(ingest::run(ingest::Plan {
            endpoint: grpc.to_string(),
            spans_per_sec: args.otlp_rate,
            seed: args.seed,
            deadline,
            timeout,
            counters: ingest_counters.clone(),
        }))
    });
    let bar = progress::steps("soak", args.seconds as usize);
    let show = {
        let (bar, q, i) = (bar.clone(), query_counters.clone(), ingest_counters.clone());
        move || {
            use std::sync::atomic::Ordering::Relaxed;
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            bar.set_position((secs as u64).min(args.seconds));
            bar.set_message(format!(
                "{} requests ({:.0}/s), {} errors; OTLP {} spans acked ({:.0}/s), {} refused, {} failed",
                q.requests.load(Relaxed),
                q.requests.load(Relaxed) as f64 / secs,
                q.errors.load(Relaxed),
                i.acked_spans.load(Relaxed),
                i.acked_spans.load(Relaxed) as f64 / secs,
                i.refused.load(Relaxed),
                i.failed_requests.load(Relaxed),
            ));
        }
    };
    // Every client stops starting requests at the deadline and each request is bounded
    // by the timeout; the margin covers connecting and scheduling on a busy machine.
    let bound = tokio::time::Instant::from_std(deadline + timeout * 2 + Duration::from_secs(10));
    let mut samples = Vec::new();
    let mut unfinished = 0;
    for t in tasks.iter_mut() {
        loop {
            tokio::select! {
                r = &mut *t => {
                    match r {
                        Ok(s) => samples.extend(s),
                        Err(e) => return Err(format!("query client task: {e}")),
                    }
                    break;
                }
                _ = tokio::time::sleep(Duration::from_millis(250)) => {
                    show();
                    if tokio::time::Instant::now() >= bound {
                        t.abort();
                        unfinished += 1;
                        break;
                    }
                }
            }
        }
    }
    if unfinished > 0 {
        tracing::warn!(
            "{unfinished} query clients did not finish in time; their requests are not counted"
        );
    }
    let outcome = match ingest_task {
        Some(t) => match tokio::time::timeout_at(bound, t).await {
            Ok(r) => r.map_err(|e| format!("OTLP ingest task: {e}"))??,
            Err(_) => return Err("OTLP ingest did not finish in time".into()),
        },
        None => ingest::Outcome::default(),
    };
    show();
    bar.finish_and_clear();
    let secs = samples
        .iter()
        .map(|s| s.end_secs)
        .fold(args.seconds as f64, f64::max);
    Ok((samples, outcome, secs))
}

fn print_summary(r: &SoakResults) {
    let q = &r.queries;
    let i = &r.ingest;
    let l = q.all.latency;
    println!("summaries: {}", r.settings.summary_mode.as_str());
    println!(
        "{} clients for {:.1} s over {} spans: {} requests ({:.1}/s), p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
        r.settings.clients,
        q.secs,
        r.load.spans,
        q.all.requests,
        q.per_sec,
        l.map_or("-".into(), |l| crate::summaries::report::fmt_ms(l.p50_ms)),
        l.map_or("-".into(), |l| crate::summaries::report::fmt_ms(l.p90_ms)),
        l.map_or("-".into(), |l| crate::summaries::report::fmt_ms(l.p99_ms)),
        l.map_or("-".into(), |l| crate::summaries::report::fmt_ms(l.max_ms)),
    );
    println!(
        "errors: {} ({} non-2xx, {} timeouts, {} transport)",
        q.all.errors, q.all.non_2xx, q.all.timeouts, q.all.transport
    );
    println!(
        "OTLP: {} spans acknowledged ({:.0}/s, target {}), {} refused, {} requests not acknowledged; acked spans lost: {}",
        i.acked_spans,
        i.acked_spans_per_sec,
        i.target_spans_per_sec,
        i.refused,
        i.failed_requests,
        i.lost_spans
    );
    if let Some(e) = &i.first_error {
        println!("first OTLP error: {e}");
    }
}

fn write_outputs(r: &SoakResults, args: &BenchSoakArgs) -> Result<(), String> {
    let dir = &args.out_dir;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let json_path = dir.join("soak.json");
    let json = serde_json::to_string_pretty(r).map_err(|e| e.to_string())?;
    write_file(&json_path, &(json + "\n"))?;
    let svg_path = dir.join("soak.svg");
    write_file(
        &svg_path,
        &plot::timeline_svg(&r.timeline, r.settings.clients),
    )?;
    println!(
        "results in {} and {}",
        json_path.display(),
        svg_path.display()
    );
    if !args.write_benchmarks {
        return Ok(());
    }
    let notes = std::fs::read_to_string(dir.join("soak-notes.md")).ok();
    let section = report::render(
        r,
        &report::Links {
            json: &link_from(&args.markdown, &json_path),
            svg: &link_from(&args.markdown, &svg_path),
            notes: notes.as_deref(),
        },
    );
    crate::markdown_section::rewrite(&args.markdown, report::SECTION, &section)?;
    println!(
        "section `{}` of {} rewritten",
        report::SECTION,
        args.markdown.display()
    );
    Ok(())
}
