//! Loading the synthetic workload: a bulk historical load and a live "follow" mode.

use std::collections::{BTreeMap, BinaryHeap};
use std::io::IsTerminal;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use store::db::{self, DbError};
use tokio::sync::{mpsc, watch};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;
use workload::{Generator, Span, WorkloadConfig};

use crate::spans::{copy_spans, copy_spans_frozen, copy_spans_into, Arrival};

/// Spans per COPY statement: large enough to amortise the round trip, small enough that
/// progress moves steadily.
const BATCH_SPANS: usize = 20_000;

/// Parallel COPY connections when the caller has no better idea.
pub const DEFAULT_WRITERS: usize = 2;

/// How long one attempt to attach a loaded day waits for a lock (queries running on
/// `otel_traces` hold them), and how many such attempts come before the last, which waits
/// as long as it takes. Meanwhile the queries queued behind the attach's lock request wait
/// too, so each attempt is kept short.
const ATTACH_LOCK_TIMEOUT: &str = "2s";
const ATTACH_ATTEMPTS: u32 = 30;

#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    pub traces: u64,
    pub spans: u64,
    pub elapsed: StdDuration,
    /// How each day with traces went in.
    pub days: BTreeMap<NaiveDate, DayOutcome>,
}

impl LoadReport {
    pub fn spans_per_sec(&self) -> f64 {
        self.spans as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Generates `config` and writes it with `writers` parallel connections, one UTC day at
/// a time per writer, newest day first. `progress` is called with the running span count.
///
/// A day whose partition holds no spans yet is built offline (migration 0005): copied
/// into a table of its own, indexed in one pass, and attached as the partition, in one
/// transaction. A day that already has spans is copied into its partition batch by
/// batch. The few spans of a trace that cross midnight into another day are written last,
/// through `otel_traces`. A load of a single day uses a single writer.
pub async fn bulk(
    url: &str,
    config: WorkloadConfig,
    writers: usize,
    progress: impl Fn(u64) + Send + Sync + 'static,
) -> Result<LoadReport, DbError> {
    bulk_with(url, config, writers, DayLoad::Offline, progress).await
}

/// How [`bulk_with`] writes a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayLoad {
    /// Built offline where its partition is empty ([`bulk`]).
    Offline,
    /// COPY through `otel_traces`, as a foreign writer does: every span goes through the
    /// capture of incremental mode, and on Citus through the coordinator to its shard.
    ThroughParent,
}

/// [`bulk`], each day written as `day_load` says.
pub async fn bulk_with(
    url: &str,
    config: WorkloadConfig,
    writers: usize,
    day_load: DayLoad,
    progress: impl Fn(u64) + Send + Sync + 'static,
) -> Result<LoadReport, DbError> {
    let started = Instant::now();
    let setup = db::connect(url).await?;
    if day_load == DayLoad::ThroughParent {
        // Each day's partition first, so no span waits in the default partition.
        store::partitions::ensure(&setup, config.start, config.end + Duration::days(1)).await?;
    }
    let days = day_jobs(&config);
    let writers = writers.clamp(1, days.len().max(1));
    let jobs = Arc::new(Mutex::new(days));
    let spill = Arc::new(Mutex::new(Vec::new()));
    let outcomes = Arc::new(Mutex::new(BTreeMap::new()));
    let written = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(progress);
    // Dropping the set aborts the other writers when one fails; their generators then
    // find their queue closed and stop.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..writers {
        let client = db::connect(url).await?;
        // Waiting for each commit's WAL flush would idle the writer for nothing a
        // regenerable bulk load needs. A crash can lose the last days, never corrupt
        // anything. This session only: other clients keep their setting.
        client.batch_execute("SET synchronous_commit = off").await?;
        tasks.spawn(write_days(
            client,
            config,
            day_load,
            jobs.clone(),
            spill.clone(),
            outcomes.clone(),
            written.clone(),
            progress.clone(),
        ));
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| DbError::Task(format!("writer task: {e}")))??;
    }
    tracing::debug!(elapsed = ?started.elapsed(), "days loaded");
    // Days without traces, and the day after the last, which late-night traces reach.
    store::partitions::ensure(&setup, config.start, config.end + Duration::days(1)).await?;
    // In incremental mode, new partitions capture writes addressed to them (a later load
    // copies into a partition directly). A catalog lookup when capture is off.
    setup
        .execute("SELECT srql_summary_capture_partitions()", &[])
        .await?;
    let spill = std::mem::take(&mut *spill.lock().expect("spill lock"));
    if !spill.is_empty() {
        let n = copy_spans(&setup, &spill, Arrival::Simulated).await?;
        progress(written.fetch_add(n, Ordering::Relaxed) + n);
    }
    // Statistics for the columns queries filter, group and sort on. The JSON columns are
    // left to autovacuum: sorting 30 000 sampled jsonb values per partition took more
    // than half of ANALYZE, and no query plan looks at them.
    let analyzed: Vec<&str> = span_row::COLUMNS
        .iter()
        .filter(|c| c.ty != span_row::ColumnType::Jsonb)
        .map(|c| c.name)
        .collect();
    setup
        .batch_execute(&format!("ANALYZE otel_traces ({})", analyzed.join(", ")))
        .await?;
    tracing::debug!(elapsed = ?started.elapsed(), "analyzed");
    let days = std::mem::take(&mut *outcomes.lock().expect("outcome lock"));
    Ok(LoadReport {
        traces: config.traces,
        spans: written.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        days,
    })
}

/// The traces starting on one UTC day.
#[derive(Debug, Clone, PartialEq)]
struct DayJob {
    day: NaiveDate,
    traces: Range<u64>,
}

fn utc_day(t: DateTime<Utc>) -> NaiveDate {
    t.date_naive()
}

fn day_start(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(chrono::NaiveTime::MIN).and_utc()
}

/// One job per UTC day of `config` that has traces starting on it, oldest first (writers
/// pop from the end, so the newest day goes first).
fn day_jobs(config: &WorkloadConfig) -> Vec<DayJob> {
    let generator = Generator::new(*config);
    // Trace starts grow with the index, so each day's first trace is found by bisection.
    let first_at_or_after = |t: DateTime<Utc>| {
        let (mut lo, mut hi) = (0u64, config.traces);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if generator.trace_start(mid) < t {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    };
    let mut jobs = Vec::new();
    let mut day = utc_day(config.start);
    while day <= utc_day(config.end) {
        let next = day.succ_opt().expect("a day before the end of time");
        let traces = first_at_or_after(day_start(day))..first_at_or_after(day_start(next));
        if !traces.is_empty() {
            jobs.push(DayJob { day, traces });
        }
        day = next;
    }
    jobs
}

/// Generates the traces of `job`, newest first, and sends the spans on its day in
/// batches; returns the spans that fall on a later day. Returns early when the writer is
/// gone.
///
/// Newest first because two of the three span indexes are on `timestamp DESC`: when a
/// day is copied into a partition that already has its indexes, spans in descending time
/// land at the right edge of those indexes, where PostgreSQL appends without a descent.
fn generate_day(config: WorkloadConfig, job: &DayJob, tx: &mpsc::Sender<Vec<Span>>) -> Vec<Span> {
    let generator = Generator::new(config);
    let mut batch = Vec::with_capacity(BATCH_SPANS);
    let mut spill = Vec::new();
    for index in job.traces.clone().rev() {
        for span in generator.trace(index).spans {
            if utc_day(span.timestamp) != job.day {
                spill.push(span);
                continue;
            }
            batch.push(span);
            if batch.len() >= BATCH_SPANS {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_SPANS));
                if tx.blocking_send(full).is_err() {
                    return spill;
                }
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(batch);
    }
    spill
}

#[allow(clippy::too_many_arguments)]
async fn write_days(
    mut client: Client,
    config: WorkloadConfig,
    day_load: DayLoad,
    jobs: Arc<Mutex<Vec<DayJob>>>,
    spill: Arc<Mutex<Vec<Span>>>,
    outcomes: Arc<Mutex<BTreeMap<NaiveDate, DayOutcome>>>,
    written: Arc<AtomicU64>,
    progress: Arc<impl Fn(u64) + Send + Sync + 'static>,
) -> Result<(), DbError> {
    loop {
        let Some(job) = jobs.lock().expect("job lock").pop() else {
            return Ok(());
        };
        // A small queue: generation is several times faster than PostgreSQL, so more
        // buffering would only hold memory.
        let (tx, rx) = mpsc::channel::<Vec<Span>>(2);
        let day = job.day;
        let generator = tokio::task::spawn_blocking(move || generate_day(config, &job, &tx));
        let count = |n: u64| progress(written.fetch_add(n, Ordering::Relaxed) + n);
        let outcome = match day_load {
            DayLoad::Offline => load_day(&mut client, day, rx, count).await?,
            DayLoad::ThroughParent => copy_day(&client, rx, count).await?,
        };
        outcomes.lock().expect("outcome lock").insert(day, outcome);
        let rest = generator
            .await
            .map_err(|e| DbError::Task(format!("generator task: {e}")))?;
        spill.lock().expect("spill lock").extend(rest);
    }
}

/// How a day's spans went in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayOutcome {
    /// Built offline and attached as a new partition.
    Attached,
    /// Built offline and swapped for the day's empty partition.
    Replaced,
    /// Built offline, then inserted into a partition that gained spans meanwhile.
    Merged,
    /// Copied batch by batch: into the day's partition, which already had spans, or
    /// through `otel_traces` ([`DayLoad::ThroughParent`]).
    Copied,
}

async fn copy_day(
    client: &Client,
    mut rx: mpsc::Receiver<Vec<Span>>,
    count: impl Fn(u64),
) -> Result<DayOutcome, DbError> {
    while let Some(batch) = rx.recv().await {
        count(copy_spans(client, &batch, Arrival::Simulated).await?);
    }
    Ok(DayOutcome::Copied)
}

async fn load_day(
    client: &mut Client,
    day: NaiveDate,
    mut rx: mpsc::Receiver<Vec<Span>>,
    count: impl Fn(u64),
) -> Result<DayOutcome, DbError> {
    let start = day_start(day);
    let stage: Option<String> = client
        .query_one("SELECT srql_load_stage_create($1)", &[&start])
        .await?
        .get(0);
    let Some(stage) = stage else {
        let partition = store::partitions::partition_name(&*client, day).await?;
        while let Some(batch) = rx.recv().await {
            count(copy_spans_into(client, &partition, &batch, Arrival::Simulated).await?);
        }
        return Ok(DayOutcome::Copied);
    };
    let began = Instant::now();
    let mut tx = client.transaction().await?;
    // The name comes from srql_load_stage_create, never from input.
    tx.batch_execute(&format!("TRUNCATE \"{stage}\"")).await?;
    while let Some(batch) = rx.recv().await {
        count(copy_spans_frozen(tx.client(), &stage, &batch, Arrival::Simulated).await?);
    }
    let copied = Instant::now();
    tx.execute("SELECT srql_load_stage_index($1)", &[&stage])
        .await?;
    let indexed = Instant::now();
    let mut attempt = 1;
    let outcome = loop {
        let last = attempt > ATTACH_ATTEMPTS;
        let savepoint = tx.savepoint("attach").await?;
        let timeout = if last { "0" } else { ATTACH_LOCK_TIMEOUT };
        savepoint
            .batch_execute(&format!("SET LOCAL lock_timeout = '{timeout}'"))
            .await?;
        let finished = savepoint
            .query_one(
                "SELECT srql_load_stage_finish($1, $2, $3)",
                &[&stage, &start, &!last],
            )
            .await;
        match finished {
            Ok(row) => {
                let outcome: String = row.get(0);
                savepoint.commit().await?;
                break outcome;
            }
            Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) && !last => {
                savepoint.rollback().await?;
                if attempt == 1 {
                    tracing::info!(%day, "loaded day waits for queries on otel_traces to attach");
                }
                attempt += 1;
                tokio::time::sleep(StdDuration::from_millis(500)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    tx.commit().await?;
    tracing::debug!(%day, %outcome, copy = ?copied - began, index = ?indexed - copied, attach = ?indexed.elapsed(), "day loaded");
    Ok(match outcome.as_str() {
        "replaced" => DayOutcome::Replaced,
        "merged" => DayOutcome::Merged,
        _ => DayOutcome::Attached,
    })
}

/// A span held back to simulate late delivery.
struct Due {
    at: Instant,
    span: Span,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    // Reversed: BinaryHeap is a max-heap and we want the earliest due first.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.at.cmp(&self.at)
    }
}

/// Keeps inserting new traces at about `spans_per_sec`, their late spans after their
/// delay, until `stop` turns true. `delay_scale` shrinks late delays (1.0 = as generated),
/// so tests can see late spans without waiting minutes.
pub async fn follow(
    url: &str,
    seed: u64,
    spans_per_sec: u64,
    delay_scale: f64,
    mut stop: watch::Receiver<bool>,
    progress: impl Fn(u64),
) -> Result<u64, DbError> {
    let client = db::connect(url).await?;
    let now = Utc::now();
    store::partitions::ensure(&client, now, now + Duration::days(1)).await?;
    let tick = StdDuration::from_millis(100);
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut late: BinaryHeap<Due> = BinaryHeap::new();
    let (mut index, mut written, mut budget) = (0u64, 0u64, 0f64);
    // The budget follows the clock, not the ticks: when a COPY takes longer than a tick
    // (on Citus, under load), the next one carries what arrived meanwhile, as a real
    // writer's batch would, instead of the rate silently falling behind.
    let mut last_tick = Instant::now();
    // Traces of a fixed seed but distinct from the bulk load's: index space far away.
    let base_index = 1u64 << 40;
    while !*stop.borrow() {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => continue,
        }
        let now = Instant::now();
        budget += spans_per_sec as f64 * (now - last_tick).as_secs_f64();
        last_tick = now;
        let mut batch = Vec::new();
        let t = Utc::now();
        while budget >= 1.0 {
            let trace = workload::trace_at(seed, base_index + index, t);
            index += 1;
            for span in trace.spans {
                budget -= 1.0;
                if span.arrival_delay_ms > 0 {
                    let delay = StdDuration::from_millis(
                        (span.arrival_delay_ms as f64 * delay_scale) as u64,
                    );
                    late.push(Due {
                        at: Instant::now() + delay,
                        span,
                    });
                } else {
                    batch.push(span);
                }
            }
        }
        while late.peek().is_some_and(|d| d.at <= Instant::now()) {
            if let Some(d) = late.pop() {
                batch.push(d.span);
            }
        }
        if !batch.is_empty() {
            written += copy_spans(&client, &batch, Arrival::At(Utc::now())).await?;
            progress(written);
        }
    }
    // Deliver what is still held back, so a stopped run leaves complete traces.
    let rest: Vec<Span> = late.into_iter().map(|d| d.span).collect();
    if !rest.is_empty() {
        written += copy_spans(&client, &rest, Arrival::At(Utc::now())).await?;
    }
    progress(written);
    Ok(written)
}

/// [`bulk`] of `spans` spans ending now and starting `days` ago, with a progress bar: what
/// `srql generate` and the benchmarks load.
pub async fn with_progress(
    url: &str,
    spans: u64,
    days: i64,
    seed: u64,
    writers: usize,
) -> Result<LoadReport, String> {
    let end = Utc::now();
    let config = WorkloadConfig::for_spans(seed, spans, end - Duration::days(days), end);
    let bar = indicatif::ProgressBar::new(spans);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} loading spans [{bar:40}] {human_pos}/{human_len} ({per_sec}, eta {eta})",
        )
        .map_err(|e| e.to_string())?
        .progress_chars("=> "),
    );
    let b = bar.clone();
    // The bar is drawn only on a terminal; in a CI log or under nohup a load of minutes
    // would otherwise say nothing, so there it logs each tenth instead.
    let logged_tenths = AtomicU64::new(0);
    let to_log = !std::io::stderr().is_terminal();
    let report = bulk(url, config, writers, move |n| {
        b.set_position(n);
        let tenths = n.saturating_mul(10) / spans.max(1);
        if to_log && tenths > logged_tenths.fetch_max(tenths, Ordering::Relaxed) {
            tracing::info!(spans = n, of = spans, "loading spans: {}%", tenths * 10);
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    Ok(report)
}

/// What a benchmark loads at one scale point.
#[derive(Debug, Clone, Copy)]
pub struct ScalePoint<'a> {
    pub spans: u64,
    pub seed: u64,
    pub writers: usize,
    /// Spans copied after the load as arriving now (the UI benchmark's wide trace).
    pub extra: &'a [Span],
    /// Whether to build the summaries as well.
    pub populate: bool,
}

/// What [`scale_point`] did, with the times the benchmarks report.
#[derive(Debug, Clone)]
pub struct ScalePointReport {
    pub loaded: LoadReport,
    pub vacuum_secs: f64,
    /// The first population of the summaries, timed as a plain refresh.
    pub plain_refresh: Option<StdDuration>,
}

/// Every benchmark's setup for one scale point, in its one order: the schema without
/// pg_cron (a scheduled refresh inside a measurement would distort it; the service's own
/// scheduler stands in), the workload over its default range, the extra spans, VACUUM
/// (ANALYZE), then the summaries when asked.
pub async fn scale_point(
    url: &str,
    cfg: &store::summaries::SummaryConfig,
    point: &ScalePoint<'_>,
) -> Result<ScalePointReport, String> {
    store::setup::run(url, cfg, false)
        .await
        .map_err(|e| e.to_string())?;
    let loaded = with_progress(
        url,
        point.spans,
        workload::DEFAULT_RANGE.num_days(),
        point.seed,
        point.writers,
    )
    .await?;
    if !point.extra.is_empty() {
        let client = db::connect(url).await.map_err(|e| e.to_string())?;
        copy_spans(&client, point.extra, Arrival::At(Utc::now()))
            .await
            .map_err(|e| format!("copying the extra spans: {e}"))?;
    }
    let vacuum_secs = vacuum(url).await?;
    let plain_refresh = if point.populate {
        Some(crate::summaries::refresh::populate(url).await?)
    } else {
        None
    };
    Ok(ScalePointReport {
        loaded,
        vacuum_secs,
        plain_refresh,
    })
}

/// Sets hint bits and the visibility map on the freshly loaded spans and completes the
/// statistics (the load skips the JSON columns), as autovacuum would soon after a load
/// anyway; done now so it neither runs during a measurement nor leaves the first reader
/// to pay for it.
async fn vacuum(url: &str) -> Result<f64, String> {
    let bar = crate::summaries::progress::spinner("VACUUM (ANALYZE) otel_traces after the load");
    let client = db::connect(url).await.map_err(|e| e.to_string())?;
    let started = Instant::now();
    client
        .batch_execute("VACUUM (ANALYZE) otel_traces")
        .await
        .map_err(|e| format!("VACUUM (ANALYZE) otel_traces: {e}"))?;
    bar.finish_and_clear();
    Ok(started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_trace_belongs_to_the_job_of_its_start_day() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let config = WorkloadConfig::for_spans(7, 60_000, start, start + Duration::days(3));
        let generator = Generator::new(config);
        let jobs = day_jobs(&config);
        assert_eq!(jobs.len(), 4, "three days from noon touch four dates");
        assert_eq!(jobs[0].traces.start, 0);
        assert_eq!(jobs[3].traces.end, config.traces);
        for pair in jobs.windows(2) {
            assert_eq!(
                pair[0].traces.end, pair[1].traces.start,
                "no gap, no overlap"
            );
            assert!(pair[0].day < pair[1].day, "oldest first");
        }
        for job in &jobs {
            for i in [job.traces.start, job.traces.end - 1] {
                assert_eq!(utc_day(generator.trace_start(i)), job.day);
            }
        }
    }

    #[test]
    fn days_batch_their_own_spans_and_spill_the_rest_losing_none() {
        let at = |t: &str| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
        let start = at("2026-01-01T12:00:00Z");
        let days = WorkloadConfig::for_spans(7, 60_000, start, start + Duration::days(3));
        let spilled = spans_by_day(days);
        assert!(
            spilled < 100,
            "only traces starting just before midnight: {spilled}"
        );
        // Traces packed around midnight, so many cross it.
        let midnight = at("2026-01-02T00:00:00Z");
        let around = WorkloadConfig::for_spans(
            7,
            5_000,
            midnight - Duration::seconds(10),
            midnight + Duration::seconds(10),
        );
        let crossing = spans_by_day(around);
        assert!(crossing > 0, "{crossing}");
    }

    /// Checks that the day jobs of `config` yield every span once, each batch on its
    /// job's day and each spilled span on a later one; returns the number spilled.
    fn spans_by_day(config: WorkloadConfig) -> usize {
        let mut expected: Vec<String> = Generator::new(config)
            .flat_map(|t| t.spans)
            .map(|s| format!("{}/{}", s.trace_id, s.span_id))
            .collect();
        let mut seen = Vec::new();
        let mut spilled = 0;
        for job in day_jobs(&config) {
            let (tx, mut rx) = mpsc::channel(1_000);
            let spill = generate_day(config, &job, &tx);
            drop(tx);
            while let Ok(batch) = rx.try_recv() {
                assert!(batch.len() <= BATCH_SPANS);
                assert!(batch.iter().all(|s| utc_day(s.timestamp) == job.day));
                seen.extend(
                    batch
                        .iter()
                        .map(|s| format!("{}/{}", s.trace_id, s.span_id)),
                );
            }
            assert!(spill.iter().all(|s| utc_day(s.timestamp) > job.day));
            spilled += spill.len();
            seen.extend(
                spill
                    .iter()
                    .map(|s| format!("{}/{}", s.trace_id, s.span_id)),
            );
        }
        seen.sort();
        expected.sort();
        assert_eq!(seen, expected);
        spilled
    }
}
