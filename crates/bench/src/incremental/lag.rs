//! Freshness under sustained ingest: `load::follow` writes at a rate, the service
//! scheduler drains as in production, and probes measure, from outside, how long a span
//! takes from its committed insert to a summary row that reflects it.
//!
//! Two kinds of probe alternate: the first span of a new trace (the row must appear) and
//! a late span with an older timestamp for a trace already summarized (its span_count
//! must grow), so both the insert and the update path are timed.

use std::collections::HashMap;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

/// What one freshness run needs besides its rate.
#[derive(Debug, Clone, Copy)]
pub struct LagSettings {
    pub seed: u64,
    /// Late-span delays are multiplied by this (1.0 = up to 10 minutes).
    pub delay_scale: f64,
    /// Seconds of measured ingest.
    pub ingest_secs: u64,
}

/// A probe every this often.
const PROBE_EVERY: StdDuration = StdDuration::from_millis(250);
/// Outstanding probes are looked up this often: the resolution of the measurement.
const POLL_EVERY: StdDuration = StdDuration::from_millis(20);
/// Ingest before measuring, so the first drains' catch-up is not counted.
const WARMUP: StdDuration = StdDuration::from_secs(5);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LagResult {
    pub rate: u64,
    /// Spans per second follow actually wrote over the measured period.
    pub achieved_rate: f64,
    pub seconds: f64,
    /// Probe lags (arrival to summary row), seconds.
    pub probes: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    /// Probes never seen in the summaries within the grace period.
    pub lost: usize,
    /// Drains the scheduler ran in the measured period and their durations.
    pub drains: usize,
    pub drain_p50_secs: f64,
    pub drain_max_secs: f64,
    pub traces_per_drain: f64,
    /// The largest arrival-to-commit lag a drain itself recorded (`lag_max_secs`).
    pub reported_lag_max: f64,
    /// After ingest stopped and a final drain: the summary rows of every trace written
    /// during the run equal the on-the-fly aggregation of its spans.
    pub exact: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbeKind {
    /// The row must exist.
    New,
    /// The row's span_count must reach 2.
    Late,
}

struct Probe {
    kind: ProbeKind,
    committed: Instant,
}

pub async fn measure(url: &str, args: &LagSettings, rate: u64) -> Result<LagResult, String> {
    let err = |e: store::DbError| e.to_string();
    let client = store::db::connect(url).await.map_err(err)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let scheduler = tokio::spawn(server::scheduler::run(
        url.to_string(),
        stop_rx.clone(),
        StdDuration::from_secs(3600),
        None,
    ));
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let w = written.clone();
    let follow_url = url.to_string();
    let seed = args.seed.wrapping_add(rate);
    let delay_scale = args.delay_scale;
    let follow = tokio::spawn(async move {
        crate::load::follow(&follow_url, seed, rate, delay_scale, stop_rx, move |n| {
            w.store(n, std::sync::atomic::Ordering::Relaxed)
        })
        .await
    });

    let spinner = ProgressBar::new(args.ingest_secs);
    spinner.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} ingest at {rate} spans/s [{{bar:30}}] {{pos}}/{{len}} s {{msg}}"
        ))
        .map_err(|e| e.to_string())?
        .progress_chars("=> "),
    );
    tokio::time::sleep(WARMUP).await;
    let run_start: DateTime<Utc> = Utc::now();
    let written_at_start = written.load(std::sync::atomic::Ordering::Relaxed);
    let measure_start = Instant::now();
    let tag = format!("probe-{rate}-{}", run_start.timestamp_millis());

    let mut outstanding: HashMap<String, Probe> = HashMap::new();
    let mut visible: Vec<String> = Vec::new();
    let mut lags: Vec<f64> = Vec::new();
    let mut next_probe = Instant::now();
    let mut n = 0u64;
    let mut late_turn = false;
    let deadline = measure_start + StdDuration::from_secs(args.ingest_secs);
    let grace = deadline + StdDuration::from_secs(30);
    while Instant::now() < deadline || (!outstanding.is_empty() && Instant::now() < grace) {
        if Instant::now() >= next_probe && Instant::now() < deadline {
            next_probe += PROBE_EVERY;
            n += 1;
            // Alternate: a late span for an older probe trace when one is visible.
            late_turn = !late_turn;
            let late_for = late_turn.then(|| visible.pop()).flatten();
            let (trace, kind) = match late_for {
                Some(t) => (t, ProbeKind::Late),
                None => (format!("{tag}-{n}"), ProbeKind::New),
            };
            insert_probe(&client, &trace, kind).await.map_err(err)?;
            outstanding.insert(
                trace,
                Probe {
                    kind,
                    committed: Instant::now(),
                },
            );
        }
        if !outstanding.is_empty() {
            let ids: Vec<&String> = outstanding.keys().collect();
            let rows = client
                .query(
                    "SELECT trace_id, span_count FROM otel_trace_summaries WHERE trace_id = ANY($1)",
                    &[&ids],
                )
                .await
                .map_err(|e| e.to_string())?;
            let seen_at = Instant::now();
            for r in rows {
                let id: String = r.get(0);
                let spans: i64 = r.get(1);
                let done = outstanding
                    .get(&id)
                    .is_some_and(|p| p.kind == ProbeKind::New || spans >= 2);
                if done {
                    if let Some(p) = outstanding.remove(&id) {
                        lags.push((seen_at - p.committed).as_secs_f64());
                        if p.kind == ProbeKind::New {
                            visible.push(id);
                        }
                    }
                }
            }
        }
        spinner.set_position(measure_start.elapsed().as_secs().min(args.ingest_secs));
        spinner.set_message(format!("{} probes", lags.len()));
        tokio::time::sleep(POLL_EVERY).await;
    }
    let elapsed = measure_start
        .elapsed()
        .as_secs_f64()
        .min(args.ingest_secs as f64);
    let achieved = (written.load(std::sync::atomic::Ordering::Relaxed) - written_at_start) as f64
        / elapsed.max(1e-9);
    let run_end: DateTime<Utc> = Utc::now();
    let _ = stop_tx.send(true);
    follow.await.map_err(|e| e.to_string())?.map_err(err)?;
    let _ = scheduler.await;
    spinner.finish_and_clear();

    let drains = client
        .query(
            "SELECT extract(epoch FROM finished_at - started_at)::float8, coalesce(rows, 0),
                    coalesce(lag_max_secs, 0)
             FROM srql_refresh_runs
             WHERE method = 'incremental' AND outcome = 'ok'
               AND started_at >= $1 AND started_at < $2
             ORDER BY id",
            &[&run_start, &run_end],
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut durations: Vec<f64> = drains.iter().map(|r| r.get(0)).collect();
    let traces: i64 = drains.iter().map(|r| r.get::<_, i64>(1)).sum();
    let reported_lag_max = drains
        .iter()
        .map(|r| r.get::<_, f64>(2))
        .fold(0.0, f64::max);
    durations.sort_by(f64::total_cmp);
    lags.sort_by(f64::total_cmp);

    let exact = check_exact(&client, run_start - chrono::Duration::seconds(10)).await?;
    Ok(LagResult {
        rate,
        achieved_rate: achieved,
        seconds: elapsed,
        probes: lags.len(),
        p50: quantile(&lags, 0.5),
        p99: quantile(&lags, 0.99),
        max: lags.last().copied().unwrap_or(f64::NAN),
        lost: outstanding.len(),
        drains: durations.len(),
        drain_p50_secs: quantile(&durations, 0.5),
        drain_max_secs: durations.last().copied().unwrap_or(f64::NAN),
        traces_per_drain: traces as f64 / durations.len().max(1) as f64,
        reported_lag_max,
        exact,
    })
}

/// Nearest-rank quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

async fn insert_probe(client: &Client, trace: &str, kind: ProbeKind) -> Result<(), store::DbError> {
    let (span, parent, age_secs): (&str, &str, f64) = match kind {
        ProbeKind::New => ("p1", "", 0.0),
        // Late and out of order: an older timestamp than the root.
        ProbeKind::Late => ("p2", "p1", 60.0),
    };
    let params: [&(dyn ToSql + Sync); 4] = [&trace, &span, &parent, &age_secs];
    client
        .execute(
            "INSERT INTO otel_traces (timestamp, trace_id, span_id, parent_span_id, name,
                 service_name, start_time_unix_nano, end_time_unix_nano, status_code)
             SELECT ts, $1, $2, $3, 'bench probe', 'bench', n, n + 1000000, 1
             FROM (SELECT now() - make_interval(secs => $4) AS ts) t,
                  LATERAL (SELECT (extract(epoch FROM t.ts) * 1e9)::bigint AS n) x",
            &params,
        )
        .await?;
    Ok(())
}

/// Drains what is left, then compares the rows of every trace written since `since`
/// with the on-the-fly aggregation of their spans.
async fn check_exact(client: &Client, since: DateTime<Utc>) -> Result<bool, String> {
    let run = store::summaries::refresh(client, store::summaries::RefreshMethod::Concurrently)
        .await
        .map_err(|e| e.to_string())?;
    let cutoff = run
        .covers_from
        .ok_or("the final drain recorded no cutoff")?;
    let cols = srql_plan::schema::SUMMARY_COLUMNS
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ");
    let touched = "trace_id IN (SELECT trace_id FROM otel_traces WHERE created_at >= $1)";
    let table = format!(
        "SELECT t::text FROM (SELECT {cols} FROM otel_trace_summaries WHERE {touched}) t ORDER BY 1"
    );
    let fly = format!(
        "SELECT t::text FROM (SELECT {cols} FROM ({}) a WHERE a.timestamp >= $2) t ORDER BY 1",
        srql_plan::summary_sql::aggregate_query(Some(touched))
    );
    let got: Vec<String> = client
        .query(&table, &[&since])
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let want: Vec<String> = client
        .query(&fly, &[&since, &cutoff])
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(!got.is_empty() && got == want)
}
