//! Loading the synthetic workload: a bulk historical load and a live "follow" mode.

use std::collections::BinaryHeap;
use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, Utc};
use tokio::sync::{mpsc, watch};
use workload::{Generator, Span, WorkloadConfig};

use crate::db::{self, DbError};
use crate::spans::{copy_spans, Arrival};

/// Spans per COPY statement: large enough to amortise the round trip, small enough that
/// progress moves steadily.
const BATCH_SPANS: usize = 20_000;

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
pub async fn bulk(
    url: &str,
    config: WorkloadConfig,
    writers: usize,
    progress: impl Fn(u64) + Send + Sync + 'static,
) -> Result<LoadReport, DbError> {
    let started = Instant::now();
    let setup = db::connect(url).await?;
    crate::partitions::ensure(&setup, config.start, config.end + Duration::days(1)).await?;

    // Generation runs on its own thread and feeds a small queue, so the CPU that is not
    // busy in PostgreSQL keeps the writers supplied.
    let (tx, rx) = mpsc::channel::<Vec<Span>>(writers * 2);
    let traces = config.traces;
    let generator = std::thread::spawn(move || {
        let mut batch = Vec::with_capacity(BATCH_SPANS + 64);
        for trace in Generator::new(config) {
            batch.extend(trace.spans);
            if batch.len() >= BATCH_SPANS {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_SPANS + 64));
                if tx.blocking_send(full).is_err() {
                    return;
                }
            }
        }
        if !batch.is_empty() {
            let _ = tx.blocking_send(batch);
        }
    });

    let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let progress = std::sync::Arc::new(progress);
    let mut tasks = Vec::new();
    for _ in 0..writers.max(1) {
        let client = db::connect(url).await?;
        let rx = rx.clone();
        let written = written.clone();
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let batch = rx.lock().await.recv().await;
                let Some(batch) = batch else { break };
                let n = copy_spans(&client, &batch, Arrival::Simulated).await?;
                let total = written.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
                progress(total);
            }
            Ok::<(), DbError>(())
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| DbError::Pool(format!("writer task: {e}")))??;
    }
    let _ = generator.join();
    setup.batch_execute("ANALYZE otel_traces").await?;
    Ok(LoadReport {
        traces,
        spans: written.load(std::sync::atomic::Ordering::Relaxed),
        elapsed: started.elapsed(),
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
