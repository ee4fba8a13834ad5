//! `srql bench-ui`: the traces tab as a user meets it. Loads a scale point into a scratch
//! database, starts the service as `srql serve` runs it, and drives headless Chromium
//! (srql-bench's WebDriver client) to time, per page load, from navigation to the first
//! page of rows painted, and to a 1,000-span trace's waterfall painted. The page sets
//! performance marks once the browser has painted (`srql:rows-painted`,
//! `srql:trace-painted`); their `startTime` counts from the navigation.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use clap::Args;
use serde::Serialize;
use workload::Scale;

use crate::scratch::{self, Server};
use crate::soak::StartService;
use crate::summaries::latency::{summarize, LatencySummary};
use crate::summaries::write_file;
use crate::webdriver::{Driver, Session};

/// The run's database, beside the service's own.
const DATABASE: &str = "srql_bench_ui";
const WIDE_TRACE: &str = "00000000000000000000000000001000";
const WIDE_SPANS: usize = 1_000;
/// Longest one page may take to paint before the run fails (rather than hangs).
const PAINT_WAIT: Duration = Duration::from_secs(60);
/// Set by the list once its cards, plot and pickers have answered (or failed).
const LIST_SETTLED: &str = "document.body.dataset.listLoaded";

#[derive(Debug, Clone, Args)]
pub struct BenchUiArgs {
    /// Scale point of the loaded data: S (100k spans), M (1M), L (10M).
    #[arg(long, default_value = "S", value_parser = Scale::parse)]
    pub scale: Scale,
    /// Load this many spans instead of the scale point's (for quick checks).
    #[arg(long)]
    pub spans: Option<u64>,
    /// Measured page loads per page, after one unmeasured warm-up load.
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Parallel COPY connections for the load.
    #[arg(long, default_value_t = crate::load::DEFAULT_WRITERS)]
    pub writers: usize,
    /// Where the JSON results go (`ui-<scale>.json`).
    #[arg(long, default_value = "bench-results")]
    pub out_dir: PathBuf,
}

#[derive(Debug, Serialize)]
struct Page {
    page: &'static str,
    path: String,
    /// Navigation to the mark, in milliseconds.
    painted: Option<LatencySummary>,
    /// Where the trace view's time went, for the page that has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    split: Option<Split>,
}

/// One trace view load cut into its phases, each summarised over the runs. The phases
/// add up to `painted` load by load (not percentile by percentile).
#[derive(Debug, Serialize)]
struct Split {
    /// Navigation to the first `/api/query` request sent: the document, its modules and
    /// the script that runs before the lookup.
    before_requests: Option<LatencySummary>,
    /// Each `/api/query` request in the order sent, from its start to its last byte
    /// (Resource Timing): the service's answer as the browser waited for it.
    requests: Vec<Option<LatencySummary>>,
    /// Between the requests: the last byte of one to the start of the next, and the
    /// last one's end to `srql:trace-fetched` (JSON parsing, the page's bookkeeping).
    between_requests: Option<LatencySummary>,
    /// `srql:trace-fetched` to `srql:trace-painted`: header, tree, waterfall rows, layout
    /// and the frame that paints them.
    painting: Option<LatencySummary>,
    /// How many requests one load made (the same on every load).
    requests_per_load: usize,
}

/// The phases of one load, in milliseconds.
struct Phases {
    before_requests: f64,
    requests: Vec<f64>,
    between_requests: f64,
    painting: f64,
}

/// Reads the phases of the load just painted from the page's performance timeline.
const SPLIT_JS: &str = "
const q = performance.getEntriesByType('resource')
  .filter((e) => new URL(e.name).pathname === '/api/query')
  .map((e) => [e.startTime, e.responseEnd]);
const fetched = performance.getEntriesByName('srql:trace-fetched')[0]?.startTime;
const painted = performance.getEntriesByName('srql:trace-painted')[0]?.startTime;
return { q, fetched: fetched ?? null, painted: painted ?? null };";

fn phases(v: &serde_json::Value) -> Result<Phases, String> {
    let num = |v: &serde_json::Value| v.as_f64();
    let requests: Vec<(f64, f64)> = v["q"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| Some((num(&r[0])?, num(&r[1])?)))
                .collect()
        })
        .unwrap_or_default();
    let (Some(fetched), Some(painted), Some(first), Some(last)) = (
        num(&v["fetched"]),
        num(&v["painted"]),
        requests.first(),
        requests.last(),
    ) else {
        return Err(format!(
            "the trace view left no marks or requests to split: {v}"
        ));
    };
    let gaps: f64 = requests.windows(2).map(|w| w[1].0 - w[0].1).sum();
    Ok(Phases {
        before_requests: first.0,
        requests: requests.iter().map(|(s, e)| e - s).collect(),
        between_requests: gaps + (fetched - last.1),
        painting: painted - fetched,
    })
}

fn ms(v: f64) -> Duration {
    Duration::from_secs_f64(v.max(0.0) / 1000.0)
}

fn split_of(loads: &[Phases]) -> Option<Split> {
    let n = loads.first()?.requests.len();
    let each =
        |f: &dyn Fn(&Phases) -> f64| summarize(&loads.iter().map(|p| ms(f(p))).collect::<Vec<_>>());
    Some(Split {
        before_requests: each(&|p| p.before_requests),
        requests: (0..n)
            .map(|i| {
                summarize(
                    &loads
                        .iter()
                        .filter_map(|p| p.requests.get(i).copied().map(ms))
                        .collect::<Vec<_>>(),
                )
            })
            .collect(),
        between_requests: each(&|p| p.between_requests),
        painting: each(&|p| p.painting),
        requests_per_load: n,
    })
}

#[derive(Debug, Serialize)]
struct UiResults {
    started_at: chrono::DateTime<Utc>,
    scale: String,
    summary_mode: store::summaries::SummaryMode,
    spans: u64,
    traces: u64,
    pages: Vec<Page>,
}

/// `maintenance`: the summary mode the service runs in (`--summary-mode`), switched to
/// after the load as `srql migrate` would switch (a switch to incremental backfills).
pub async fn run(
    db: &Server,
    cfg: &store::summaries::SummaryConfig,
    maintenance: &store::summaries::Maintenance,
    args: &BenchUiArgs,
    start: &StartService,
) -> Result<(), String> {
    if args.runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    let started_at = Utc::now();
    let url = scratch::recreate_database(db, DATABASE).await?;
    let measured = measure(&url, cfg, maintenance, args, start).await;
    // Dropped whatever happened, so a rerun starts clean.
    let dropped = scratch::drop_database(db, DATABASE).await;
    let (spans, traces, pages) = measured?;
    dropped?;
    let results = UiResults {
        started_at,
        scale: args
            .spans
            .map_or_else(|| args.scale.name().to_string(), |n| format!("{n} spans")),
        summary_mode: maintenance.mode,
        spans,
        traces,
        pages,
    };
    println!(
        "traces tab at {} ({} spans, {} summaries), {} page loads each:",
        results.scale,
        results.spans,
        results.summary_mode.as_str(),
        args.runs
    );
    let line = |what: &str, l: &Option<LatencySummary>| {
        if let Some(l) = l {
            println!(
                "  {:<34} p50 {:>7.1} ms  p95 {:>7.1} ms  max {:>7.1} ms",
                what, l.p50_ms, l.p95_ms, l.max_ms
            );
        }
    };
    for p in &results.pages {
        line(p.page, &p.painted);
        if let Some(s) = &p.split {
            line("    navigation to first request", &s.before_requests);
            for (i, r) in s.requests.iter().enumerate() {
                line(&format!("    API request {}", i + 1), r);
            }
            line("    between requests, parsing", &s.between_requests);
            line("    rows in to painted", &s.painting);
        }
    }
    let json = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
    let out = args
        .out_dir
        .join(format!("ui-{}.json", results.scale.replace(' ', "-")));
    write_file(&out, &json)?;
    println!("results: {}", out.display());
    Ok(())
}

async fn measure(
    url: &str,
    cfg: &store::summaries::SummaryConfig,
    maintenance: &store::summaries::Maintenance,
    args: &BenchUiArgs,
    start: &StartService,
) -> Result<(u64, u64, Vec<Page>), String> {
    // The generated traces are small; the trace view is timed on one of 1,000 spans.
    let wide = crate::wide_trace::wide_trace(
        WIDE_TRACE,
        WIDE_SPANS,
        Utc::now() - chrono::Duration::minutes(10),
    );
    let point = crate::load::ScalePoint {
        spans: args.spans.unwrap_or(args.scale.spans()),
        seed: args.seed,
        writers: args.writers,
        extra: &wide,
        populate: true,
    };
    let loaded = crate::load::scale_point(url, cfg, &point).await?.loaded;
    crate::steady_state::as_a_running_service_in(url, cfg, maintenance).await?;

    let service = start(url.to_string()).await?;
    let base = format!("http://{}", service.addr);
    let runs = args.runs;
    // WebDriver calls block; the service keeps the async workers.
    let driven = tokio::task::spawn_blocking(move || drive(&base, runs)).await;
    service.stop.await;
    let pages = driven.map_err(|e| format!("the browser driver failed: {e}"))??;
    Ok((loaded.spans, loaded.traces, pages))
}

fn drive(base: &str, runs: usize) -> Result<Vec<Page>, String> {
    let driver = Driver::start()?;
    let session = driver.session(1400, 1000)?;
    // Each page: its name, path, the mark to time, what must be shown, and what says the
    // page has finished its background reads.
    let pages: [(&'static str, String, &str, String, &str, bool); 3] = [
        (
            "list, default range (last hour)",
            "/".to_string(),
            "srql:rows-painted",
            "document.querySelectorAll('#traces tbody tr[data-trace-id]').length".to_string(),
            LIST_SETTLED,
            false,
        ),
        (
            "list, last 24 hours",
            "/?range=24h".to_string(),
            "srql:rows-painted",
            "document.querySelectorAll('#traces tbody tr[data-trace-id]').length".to_string(),
            LIST_SETTLED,
            false,
        ),
        (
            "trace view, 1,000 spans",
            format!("/?view=trace&id={WIDE_TRACE}"),
            "srql:trace-painted",
            format!(
                "document.getElementById('waterfall-rows').dataset.spanCount === '{WIDE_SPANS}'"
            ),
            "true",
            true,
        ),
    ];
    pages
        .into_iter()
        .map(|(page, path, mark, shown, settled, split)| {
            let timed = time_page(
                &session,
                &format!("{base}{path}"),
                mark,
                &shown,
                settled,
                runs,
                split,
            )?;
            Ok(Page {
                page,
                path,
                painted: summarize(&timed.samples),
                split: split.then(|| split_of(&timed.phases)).flatten(),
            })
        })
        .collect()
}

/// One warm-up load (the browser caches the assets, as a returning user's does), then
/// `runs` timed ones, each checked to have shown what it should; with `split`, each also
/// cut into its phases.
fn time_page(
    s: &Session,
    url: &str,
    mark: &str,
    shown: &str,
    settled: &str,
    runs: usize,
    split: bool,
) -> Result<Timed, String> {
    let mut samples = Vec::with_capacity(runs);
    let mut loads = Vec::new();
    for i in 0..=runs {
        s.goto(url)?;
        let ms = s.wait_for(
            mark,
            &format!("performance.getEntriesByName('{mark}')[0]?.startTime"),
            PAINT_WAIT,
        )?;
        let what = s.js(&format!("return {shown};"), vec![])?;
        if what == serde_json::json!(0) || what == serde_json::json!(false) {
            return Err(format!(
                "{url} painted nothing to time: is the data loaded?"
            ));
        }
        // A user reads the page before opening the next one; reloading at once would time
        // each load against the cards, plot and pickers queries the last one left running.
        s.wait_for("the page's background reads", settled, PAINT_WAIT)?;
        if i > 0 {
            samples.push(Duration::from_secs_f64(ms.as_f64().unwrap_or(0.0) / 1000.0));
            if split {
                loads.push(phases(&s.js(SPLIT_JS, vec![])?)?);
            }
        }
    }
    Ok(Timed {
        samples,
        phases: loads,
    })
}

struct Timed {
    samples: Vec<Duration>,
    phases: Vec<Phases>,
}
