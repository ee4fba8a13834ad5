//! Loading the synthetic workload: a bulk historical load and a live "follow" mode.

use std::collections::{BinaryHeap, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use tokio::sync::{mpsc, watch};
use tokio_postgres::Client;
use workload::{Generator, Span, WorkloadConfig};

use crate::db::{self, DbError};
use crate::spans::{copy_spans, copy_spans_into, Arrival};

/// Spans per COPY statement: large enough to amortise the round trip, small enough that
/// progress moves steadily.
const BATCH_SPANS: usize = 20_000;

/// Parallel COPY connections when the caller has no better idea.
pub const DEFAULT_WRITERS: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadReport {
    pub traces: u64,
    pub spans: u64,
    pub elapsed: StdDuration,
}

impl LoadReport {
    pub fn spans_per_sec(&self) -> f64 {
        self.spans as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Generates `config` and writes it with `writers` parallel COPY connections.
/// `progress` is called with the running span count.
///
/// Each writer loads its own stretch of time (a contiguous range of trace indices, which
/// the generator lays out in time order), generated on a thread of its own, and copies
/// each batch straight into that day's partition. So the writers fill different
/// partitions instead of contending for the same hot index pages and extension lock, and
/// PostgreSQL routes no rows.
pub async fn bulk(
    url: &str,
    config: WorkloadConfig,
    writers: usize,
    progress: impl Fn(u64) + Send + Sync + 'static,
) -> Result<LoadReport, DbError> {
    let started = Instant::now();
    let setup = db::connect(url).await?;
    crate::partitions::ensure(&setup, config.start, config.end + Duration::days(1)).await?;
    let tables = Arc::new(DayTables::read(&setup).await?);

    let written = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(progress);
    // Dropping the set aborts the other writers when one fails; their generators then
    // find their queue closed and stop.
    let mut tasks = tokio::task::JoinSet::new();
    for share in shares(config.traces, writers.max(1)) {
        let client = db::connect(url).await?;
        // Every COPY commits; waiting for each commit's WAL flush would idle the writer
        // for nothing a regenerable bulk load needs. A crash can lose the last batches,
        // never corrupt anything. This session only: other clients keep their setting.
        client.batch_execute("SET synchronous_commit = off").await?;
        // A small queue: generation is several times faster than PostgreSQL, so more
        // buffering would only hold memory.
        let (tx, rx) = mpsc::channel::<DayBatch>(2);
        std::thread::spawn(move || generate(config, share, &tx));
        tasks.spawn(write_batches(
            client,
            rx,
            tables.clone(),
            written.clone(),
            progress.clone(),
        ));
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| DbError::Pool(format!("writer task: {e}")))??;
    }
    // Statistics for the columns queries filter, group and sort on. The JSON columns are
    // left to autovacuum: sorting 30 000 sampled jsonb values per partition took more
    // than half of ANALYZE, and no query plan looks at them.
    setup
        .batch_execute(
            "ANALYZE otel_traces (timestamp, trace_id, span_id, parent_span_id, name, kind, \
             start_time_unix_nano, end_time_unix_nano, service_name, service_version, \
             service_instance, scope_name, scope_version, status_code, status_message, created_at)",
        )
        .await?;
    Ok(LoadReport {
        traces: config.traces,
        spans: written.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    })
}

/// `traces` split into `n` contiguous ranges of nearly equal size.
fn shares(traces: u64, n: usize) -> Vec<Range<u64>> {
    let n = n as u64;
    (0..n)
        .map(|i| (traces * i / n)..(traces * (i + 1) / n))
        .filter(|r| !r.is_empty())
        .collect()
}

/// Spans whose timestamps fall on one UTC day.
struct DayBatch {
    day: NaiveDate,
    spans: Vec<Span>,
}

fn utc_day(t: DateTime<Utc>) -> NaiveDate {
    t.date_naive()
}

/// Generates the traces `indices` of `config`, newest first, and sends their spans in
/// batches of one day each. Returns early when the writer is gone.
///
/// Newest first because two of the three span indexes are on `timestamp DESC`: spans in
/// descending time land at the right edge of the index, where PostgreSQL appends without
/// a descent and splits full pages unevenly, instead of at the left edge, where each split
/// leaves two half-empty pages. The indexes end up smaller and the load writes less WAL.
fn generate(config: WorkloadConfig, indices: Range<u64>, tx: &mpsc::Sender<DayBatch>) {
    let generator = Generator::new(config);
    let reach = Duration::nanoseconds(workload::MAX_START_OFFSET_NANOS);
    // Days still receiving spans: one, or two while traces straddle midnight.
    let mut open: Vec<DayBatch> = Vec::new();
    for index in indices.rev() {
        // No trace yet to come has a span later than this one's start plus the reach,
        // so the days after that are complete.
        let last_open_day = utc_day(generator.trace_start(index) + reach);
        while let Some(i) = open.iter().position(|b| b.day > last_open_day) {
            if tx.blocking_send(open.swap_remove(i)).is_err() {
                return;
            }
        }
        let mut spans = generator.trace(index).spans;
        spans.sort_unstable_by_key(|s| std::cmp::Reverse(s.timestamp));
        for span in spans {
            let day = utc_day(span.timestamp);
            let i = match open.iter().position(|b| b.day == day) {
                Some(i) => i,
                None => {
                    open.push(DayBatch {
                        day,
                        spans: Vec::with_capacity(BATCH_SPANS),
                    });
                    open.len() - 1
                }
            };
            open[i].spans.push(span);
            if open[i].spans.len() >= BATCH_SPANS && tx.blocking_send(open.swap_remove(i)).is_err()
            {
                return;
            }
        }
    }
    for batch in open {
        if tx.blocking_send(batch).is_err() {
            return;
        }
    }
}

async fn write_batches(
    client: Client,
    mut rx: mpsc::Receiver<DayBatch>,
    tables: Arc<DayTables>,
    written: Arc<AtomicU64>,
    progress: Arc<impl Fn(u64) + Send + Sync + 'static>,
) -> Result<(), DbError> {
    while let Some(batch) = rx.recv().await {
        let n = copy_spans_into(
            &client,
            tables.for_day(batch.day),
            &batch.spans,
            Arrival::Simulated,
        )
        .await?;
        let total = written.fetch_add(n, Ordering::Relaxed) + n;
        progress(total);
    }
    Ok(())
}

/// The day partition of `otel_traces` for each UTC day, by the names
/// `srql_ensure_partition` gives them (`otel_traces_pYYYYMMDD`). A row copied into a
/// partition is still checked against its bounds, so a misnamed partition fails the load
/// rather than misplacing rows.
struct DayTables {
    by_day: HashMap<NaiveDate, String>,
}

impl DayTables {
    async fn read(client: &Client) -> Result<Self, DbError> {
        let by_day = crate::partitions::list(client)
            .await?
            .into_iter()
            .filter_map(|name| {
                let day = NaiveDate::parse_from_str(name.strip_prefix("otel_traces_p")?, "%Y%m%d")
                    .ok()?;
                Some((day, name))
            })
            .collect();
        Ok(Self { by_day })
    }

    /// The table to copy `day`'s spans into: its partition, or the parent (which routes
    /// each row) for a day without one.
    fn for_day(&self, day: NaiveDate) -> &str {
        self.by_day.get(&day).map_or("otel_traces", String::as_str)
    }
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
    crate::partitions::ensure(&client, now, now + Duration::days(1)).await?;
    let tick = StdDuration::from_millis(100);
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut late: BinaryHeap<Due> = BinaryHeap::new();
    let (mut index, mut written, mut budget) = (0u64, 0u64, 0f64);
    // Traces of a fixed seed but distinct from the bulk load's: index space far away.
    let base_index = 1u64 << 40;
    while !*stop.borrow() {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => continue,
        }
        budget += spans_per_sec as f64 * tick.as_secs_f64();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_trace_once() {
        assert_eq!(shares(10, 3), vec![0..3, 3..6, 6..10]);
        assert_eq!(shares(1, 4), vec![0..1]);
        assert!(shares(0, 2).is_empty());
    }

    #[test]
    fn batches_hold_one_day_each_and_lose_no_span() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let config = WorkloadConfig::for_spans(7, 60_000, start, start + Duration::days(3));
        let expected: Vec<String> = Generator::new(config)
            .flat_map(|t| t.spans)
            .map(|s| format!("{}/{}", s.trace_id, s.span_id))
            .collect();
        let (tx, mut rx) = mpsc::channel(1_000);
        generate(config, 0..config.traces, &tx);
        drop(tx);
        let mut seen = Vec::new();
        let mut days = std::collections::BTreeSet::new();
        while let Ok(batch) = rx.try_recv() {
            assert!(batch.spans.len() <= BATCH_SPANS);
            assert!(batch
                .spans
                .iter()
                .all(|s| utc_day(s.timestamp) == batch.day));
            days.insert(batch.day);
            seen.extend(
                batch
                    .spans
                    .iter()
                    .map(|s| format!("{}/{}", s.trace_id, s.span_id)),
            );
        }
        assert_eq!(days.len(), 4, "three days from noon touch four dates");
        seen.sort();
        let mut expected = expected;
        expected.sort();
        assert_eq!(seen, expected);
    }
}
