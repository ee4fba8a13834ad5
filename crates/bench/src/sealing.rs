//! `srql bench-sealing`: what sealing buys and costs at a scale point. The workload is
//! loaded into a scratch database as `srql bench` loads it, the summaries maintained in
//! the global `--summary-mode` (in incremental mode lookups by id are bounded by their
//! traces' extents, as the service bounds them in that mode; in materialized-view mode
//! they search every day and there is no drain to measure), and measured twice, all heap
//! and then with every day sealed but the newest two (as `--seal-after 1d` leaves them):
//! spans storage per million spans, a trace's spans by id from an old day, the drain's
//! read of old traces, the on-the-fly path over 7 days and the summaries' first pages
//! through the HTTP API. Between the two, the sealing round is timed while a reader keeps
//! looking traces up, to show what the swap's lock costs it. Printed as Markdown rows for
//! BENCHMARKS.md.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use clap::Args;
use store::summaries::SummaryMode::{self, Incremental, MaterializedView};
use workload::Scale;

mod day_storage;

use crate::scratch::{self, Server};
use crate::summaries::api::{Path, SrqlClient};
use crate::summaries::latency::{summarize, LatencySummary};
use crate::summaries::storage::{self, per_million, Storage};
use crate::summaries::Service;

const DATABASE: &str = "srql_bench_sealing";

/// Traces the drain's read takes at once, as a drain batch does.
const DRAIN_BATCH: usize = 1000;

/// The first pages timed on the summaries, which sealing must leave as they were.
const FIRST_PAGES: &[(&str, &str)] = &[
    (
        "UI opens",
        "in:otel_trace_summaries sort:timestamp:desc limit:20",
    ),
    (
        "last 24 h",
        "in:otel_trace_summaries time:last_24h sort:timestamp:desc limit:100",
    ),
    (
        "last 7 d",
        "in:otel_trace_summaries time:last_7d sort:timestamp:desc limit:100",
    ),
];

/// The on-the-fly query: 7 days, so every sealed day is aggregated.
const ON_THE_FLY: &str = "in:otel_trace_summaries time:last_7d sort:timestamp:desc limit:100";

/// Far above any request here; only bounds a stuck one.
const HTTP_TIMEOUT: StdDuration = StdDuration::from_secs(900);

#[derive(Debug, Clone, Args)]
pub struct BenchSealingArgs {
    /// Scale point of the loaded data: S (100k spans), M (1M), L (10M).
    #[arg(long, default_value = "S", value_parser = Scale::parse)]
    pub scale: Scale,
    /// Load this many spans instead of the scale point's (for quick checks).
    #[arg(long)]
    pub spans: Option<u64>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Parallel COPY connections for the load.
    #[arg(long, default_value_t = crate::load::DEFAULT_WRITERS)]
    pub writers: usize,
    /// Trace lookups measured on each side.
    #[arg(long, default_value_t = 200)]
    pub lookups: usize,
    /// Timed runs of the 7-day on-the-fly query on each side (after one untimed run).
    #[arg(long, default_value_t = 3)]
    pub on_the_fly_runs: usize,
    /// The order sealed days are written in: trace_id (the service's), timestamp or
    /// service_name.
    #[arg(long, default_value = "trace_id", value_parser = store::sealing::SortOrder::parse)]
    pub sort_order: store::sealing::SortOrder,
}

/// `maintenance`: the summary mode measured (`--summary-mode`), switched to after the
/// load as `srql migrate` would switch (a switch to incremental backfills).
pub async fn run(
    db: &Server,
    cfg: &store::summaries::SummaryConfig,
    maintenance: &store::summaries::Maintenance,
    args: &BenchSealingArgs,
) -> Result<(), String> {
    let url = scratch::recreate_database(db, DATABASE).await?;
    let measured = measure(&url, cfg, maintenance, args).await;
    // Dropped whatever happened, so a rerun starts clean.
    let dropped = scratch::drop_database(db, DATABASE).await;
    measured?;
    dropped
}

/// What one side (heap, or sealed) measured.
struct Side {
    storage: Storage,
    days: day_storage::Breakdown,
    /// As the service looks a trace up (bounded by its extent).
    lookup: LatencySummary,
    /// Without a time bound: every day visited.
    lookup_every_day: LatencySummary,
    /// Incremental mode only: the other mode has no drain.
    drain: Option<LatencySummary>,
    on_the_fly: LatencySummary,
    first_pages: Vec<LatencySummary>,
}

/// Traces of the old days (those that get sealed) and where their spans lie.
struct OldTraces {
    ids: Vec<String>,
    first: Vec<DateTime<Utc>>,
    last: Vec<DateTime<Utc>>,
}

async fn measure(
    url: &str,
    cfg: &store::summaries::SummaryConfig,
    maintenance: &store::summaries::Maintenance,
    args: &BenchSealingArgs,
) -> Result<(), String> {
    let err = |e: store::DbError| e.to_string();
    let point = crate::load::ScalePoint {
        spans: args.spans.unwrap_or(args.scale.spans()),
        seed: args.seed,
        writers: args.writers,
        extra: &[],
        populate: true,
    };
    crate::load::scale_point(url, cfg, &point).await?;
    let loaded_at = Utc::now();
    crate::steady_state::switch_summary_mode(url, cfg, maintenance).await?;
    let mut client = store::db::connect(url).await.map_err(err)?;
    // What is measured is the mode the database is in, not the flag's word for it.
    let mode = store::summaries::stored_maintenance(&client)
        .await
        .map_err(err)?
        .mode;
    if !store::sealing::available(&client).await.map_err(err)? {
        return Err(store::sealing::UNAVAILABLE.to_string());
    }
    let old = old_traces(&client, args.lookups.max(DRAIN_BATCH)).await?;

    let heap = measure_side(url, &client, &old, mode, args).await?;

    let reading = Arc::new(AtomicBool::new(true));
    let reader = tokio::spawn(read_during_sealing(
        url.to_string(),
        old.ids[..args.lookups.min(old.ids.len())].to_vec(),
        reading.clone(),
    ));
    let started = Instant::now();
    let round = store::sealing::seal_due_sorted(
        &mut client,
        Duration::days(1),
        cfg.retention,
        args.sort_order,
    )
    .await
    .map_err(err);
    let seal_secs = started.elapsed().as_secs_f64();
    reading.store(false, Ordering::Relaxed);
    let during = reader.await.map_err(|e| format!("reader task: {e}"))??;
    let round = round?;
    if !round.postponed.is_empty() {
        return Err(format!("days not sealed: {:?}", round.postponed));
    }
    client
        .batch_execute("ANALYZE otel_traces")
        .await
        .map_err(|e| e.to_string())?;
    let sealed = measure_side(url, &client, &old, mode, args).await?;

    let days = round.sealed.len();
    println!(
        "summaries: {} mode{}",
        mode.as_str(),
        match mode {
            Incremental => "; lookups by id bounded by their traces' extents",
            MaterializedView => "; lookups by id search every day, and there is no drain",
        }
    );
    let slowest = round
        .sealed
        .iter()
        .max_by(|a, b| a.seconds.total_cmp(&b.seconds));
    println!(
        "sealing: {days} days in {seal_secs:.1} s, sorted by {}; slowest day {} ({} spans) {:.1} s",
        args.sort_order.name(),
        slowest.map_or("-", |d| d.partition.as_str()),
        slowest.map_or(0, |d| d.spans),
        slowest.map_or(0.0, |d| d.seconds),
    );
    println!(
        "a reader during sealing: {} lookups by id, p50 {:.2} ms, p99 {:.2} ms, slowest {:.1} ms",
        during.runs, during.p50_ms, during.p99_ms, during.max_ms
    );
    println!();
    print_table(args.scale, days, &heap, &sealed);
    println!();
    println!(
        "Spans storage by kind of day, sealed side (data loaded up to {} UTC):",
        loaded_at.format("%Y-%m-%d %H:%M")
    );
    println!();
    for line in day_storage::table(&sealed.days) {
        println!("{line}");
    }
    println!();
    for line in day_storage::mix(&sealed.days) {
        println!("{line}");
    }
    println!();
    println!("Heap side (every day heap):");
    println!();
    for line in day_storage::table(&heap.days) {
        println!("{line}");
    }
    Ok(())
}

async fn measure_side(
    url: &str,
    client: &tokio_postgres::Client,
    old: &OldTraces,
    mode: SummaryMode,
    args: &BenchSealingArgs,
) -> Result<Side, String> {
    let storage = storage::measure(url).await?;
    let days = day_storage::measure(client).await?;
    let ids = &old.ids[..args.lookups.min(old.ids.len())];
    let lookup = service_lookups(client, ids, mode).await?;
    let lookup_every_day = lookups(client, ids).await?;
    let drain = match mode {
        Incremental => Some(drain_reads(client, old).await?),
        MaterializedView => None,
    };
    let service = Service::start(url).await?;
    let http = async {
        let mut api = SrqlClient::connect(service.addr, HTTP_TIMEOUT).await?;
        let mut first_pages = Vec::new();
        for (_, q) in FIRST_PAGES {
            first_pages.push(timed_queries(&mut api, q, Path::Summaries, 10, 100).await?);
        }
        let on_the_fly = timed_queries(
            &mut api,
            ON_THE_FLY,
            Path::OnTheFly,
            1,
            args.on_the_fly_runs,
        )
        .await?;
        Ok::<_, String>((first_pages, on_the_fly))
    }
    .await;
    service.stop().await?;
    let (first_pages, on_the_fly) = http?;
    Ok(Side {
        storage,
        days,
        lookup,
        lookup_every_day,
        drain,
        on_the_fly,
        first_pages,
    })
}

async fn old_traces(client: &tokio_postgres::Client, n: usize) -> Result<OldTraces, String> {
    let rows = client
        .query(
            "WITH t AS (SELECT trace_id FROM otel_traces WHERE timestamp < now() - interval '3 days'
                        GROUP BY trace_id ORDER BY md5(trace_id) LIMIT $1)
             SELECT s.trace_id, min(s.timestamp), max(s.timestamp)
             FROM otel_traces s JOIN t USING (trace_id)
             GROUP BY s.trace_id ORDER BY md5(s.trace_id)",
            &[&(n as i64)],
        )
        .await
        .map_err(|e| e.to_string())?;
    if rows.is_empty() {
        return Err("no trace older than three days to look up".into());
    }
    Ok(OldTraces {
        ids: rows.iter().map(|r| r.get(0)).collect(),
        first: rows.iter().map(|r| r.get(1)).collect(),
        last: rows.iter().map(|r| r.get(2)).collect(),
    })
}

/// A trace's spans by id without a time bound (every day). Prepared per query as
/// store::exec does, so the id is planned as a value: a sealed day's chunk groups are
/// skipped by it, which a generic plan's parameter does not allow.
const BY_ID: &str = "SELECT * FROM otel_traces WHERE trace_id = $1";

/// A trace's spans by id as the trace view asks the service for them: the plan made
/// against the database's catalog, run by `store::exec::run` as the service runs it (the
/// extent read first, then the lookup with the bounds as values, and the rows shaped into
/// JSON; HTTP and the catalog read left out). After one untimed pass, so both sides are
/// measured warm. Bounded in incremental mode, where the service bounds them.
async fn service_lookups(
    client: &tokio_postgres::Client,
    traces: &[String],
    mode: SummaryMode,
) -> Result<LatencySummary, String> {
    let catalog = store::summaries::catalog(client)
        .await
        .map_err(|e| e.to_string())?;
    let mut plans = Vec::with_capacity(traces.len());
    for t in traces {
        let plan = srql_plan::compile(
            &format!("in:traces trace_id:\"{t}\" limit:100"),
            &catalog,
            &srql_plan::PageRequest::default(),
            &srql_lang::Limits::default(),
            Utc::now(),
        )
        .map_err(|e| e.to_string())?;
        if plan.trace_extents != (mode == Incremental) {
            return Err(format!(
                "in {} mode lookups should {}be bounded by their traces' extents",
                mode.as_str(),
                if mode == Incremental { "" } else { "not " }
            ));
        }
        plans.push(plan);
    }
    let mut samples = Vec::with_capacity(plans.len());
    for pass in 0..2 {
        for plan in &plans {
            let started = Instant::now();
            store::exec::run(client, plan)
                .await
                .map_err(|e| e.to_string())?;
            if pass == 1 {
                samples.push(started.elapsed());
            }
        }
    }
    summarize(&samples).ok_or_else(|| "no lookup measured".into())
}

/// Fetching each trace's spans by id, after one untimed pass so both sides are measured
/// warm.
async fn lookups(
    client: &tokio_postgres::Client,
    traces: &[String],
) -> Result<LatencySummary, String> {
    let mut samples = Vec::with_capacity(traces.len());
    for pass in 0..2 {
        for t in traces {
            let started = Instant::now();
            client.query(BY_ID, &[t]).await.map_err(|e| e.to_string())?;
            if pass == 1 {
                samples.push(started.elapsed());
            }
        }
    }
    summarize(&samples).ok_or_else(|| "no lookup measured".into())
}

/// The read a drain batch makes (store::incremental): each trace's spans by id within
/// its known extent, aggregated. One untimed run, then five.
async fn drain_reads(
    client: &tokio_postgres::Client,
    old: &OldTraces,
) -> Result<LatencySummary, String> {
    let n = DRAIN_BATCH.min(old.ids.len());
    let stmt = client
        .prepare(
            "SELECT k.id, count(*), min(t.start_time_unix_nano), max(t.end_time_unix_nano),
                    count(*) FILTER (WHERE t.status_code = 2), min(t.service_name)
             FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS k(id, lo, hi)
             JOIN LATERAL (SELECT * FROM otel_traces t
                           WHERE t.trace_id = k.id AND t.timestamp >= k.lo AND t.timestamp <= k.hi) t
               ON true
             GROUP BY k.id",
        )
        .await
        .map_err(|e| e.to_string())?;
    let (ids, first, last) = (&old.ids[..n], &old.first[..n], &old.last[..n]);
    let mut samples = Vec::new();
    for run in 0..6 {
        let started = Instant::now();
        let rows = client
            .query(&stmt, &[&ids, &first, &last])
            .await
            .map_err(|e| e.to_string())?;
        if rows.len() != n {
            return Err(format!(
                "the drain's read found {} of {n} traces",
                rows.len()
            ));
        }
        if run > 0 {
            samples.push(started.elapsed());
        }
    }
    summarize(&samples).ok_or_else(|| "no drain read measured".into())
}

async fn timed_queries(
    api: &mut SrqlClient,
    query: &str,
    path: Path,
    warmup: usize,
    runs: usize,
) -> Result<LatencySummary, String> {
    let mut samples = Vec::with_capacity(runs);
    for run in 0..warmup + runs.max(1) {
        let (took, _) = api
            .query(query, path, None)
            .await
            .map_err(|e| e.to_string())?;
        if run >= warmup {
            samples.push(took);
        }
    }
    summarize(&samples).ok_or_else(|| "no query measured".into())
}

/// Looks traces up by id on its own connection until told to stop: what a reader of
/// the trace view sees while days are sealed and swapped.
async fn read_during_sealing(
    url: String,
    traces: Vec<String>,
    reading: Arc<AtomicBool>,
) -> Result<LatencySummary, String> {
    let client = store::db::connect(&url).await.map_err(|e| e.to_string())?;
    let mut samples = Vec::new();
    for t in traces.iter().cycle() {
        if !reading.load(Ordering::Relaxed) {
            break;
        }
        let started = Instant::now();
        client.query(BY_ID, &[t]).await.map_err(|e| e.to_string())?;
        samples.push(started.elapsed());
    }
    summarize(&samples).ok_or_else(|| "no lookup during sealing".into())
}

fn print_table(scale: Scale, days: usize, heap: &Side, sealed: &Side) {
    let mib = |b: f64| b / 1_048_576.0;
    let per_m = |s: &Storage| mib(per_million(s.spans_bytes(), s.spans));
    let p = |l: &LatencySummary| format!("{:.2} / {:.2}", l.p50_ms, l.p95_ms);
    print!(
        "| scale | spans | days sealed | side | spans: table + indexes | per 1M spans | vs 84 MiB/M \
         | by id p50 / p95 ms | by id, every day, p50 / p95 ms | drain read ({DRAIN_BATCH} traces) p50 ms | on the fly, 7 d p50 ms |"
    );
    for (title, _) in FIRST_PAGES {
        print!(" {title} p50 / p95 ms |");
    }
    println!();
    println!("|{}", "---|".repeat(11 + FIRST_PAGES.len()));
    for (name, s) in [("heap", heap), ("sealed", sealed)] {
        print!(
            "| {} | {} | {} | {name} | {:.1} + {:.1} MiB | {:.0} MiB | {:.2}x | {} | {} | {} | {:.0} |",
            scale.name(),
            s.storage.spans,
            if name == "heap" { 0 } else { days },
            mib(s.storage.spans_table_bytes as f64),
            mib(s.storage.spans_index_bytes as f64),
            per_m(&s.storage),
            per_m(&s.storage) / 84.0,
            p(&s.lookup),
            p(&s.lookup_every_day),
            s.drain.map_or("-".to_string(), |d| format!("{:.1}", d.p50_ms)),
            s.on_the_fly.p50_ms,
        );
        for l in &s.first_pages {
            print!(" {} |", p(l));
        }
        println!();
    }
}
