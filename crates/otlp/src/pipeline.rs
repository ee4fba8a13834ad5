//! The write path shared by both receivers: a bounded queue of requests, drained by
//! writer tasks that coalesce whatever is waiting into one binary COPY.
//!
//! Durability: a request is answered only after the transaction of the COPY holding its spans
//! committed (`store::ingest::copy_records`), so an acknowledged span is stored. A failed
//! COPY acknowledges nothing; the client is told to retry (database trouble) or that
//! its data was refused. Delivery is at least once: a client that gave up waiting (or
//! lost the answer) and sends again may store a span twice.
//!
//! Back-pressure: the queue holds at most `max_queued_requests` requests and
//! `max_queued_spans` spans (waiting or being written); past either, `submit` fails at
//! once with [`IngestError::Busy`] instead of growing, and the receivers translate that
//! to the protocol's "retry later".

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
pub use store::ingest::IngestStats;
use store::ingest::SpanRow;
use store::DbError;
use tokio::sync::{mpsc, oneshot, watch, Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::admission::{Admission, Limits, Refusal};
use crate::convert::TimeWindow;
use crate::failure_log::FailureLog;

#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Requests waiting for a writer, beyond which new ones are refused.
    pub max_queued_requests: usize,
    /// Spans waiting or being written, beyond which new requests are refused. Bounds
    /// memory whatever the request sizes.
    pub max_queued_spans: usize,
    /// A writer stops adding waiting requests to its COPY past this many spans.
    pub batch_spans: usize,
    /// Concurrent COPY connections.
    pub writers: usize,
    /// What refused clients are told to wait before retrying.
    pub retry_after: Duration,
    /// What one request may be, and the decode budget all requests share.
    pub limits: Limits,
    /// Longest wait for a connection, and then for a COPY, before a batch fails as
    /// "database unavailable": a frozen database answers 503 rather than hanging.
    pub write_timeout: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_queued_requests: 256,
            max_queued_spans: 256 * 1024,
            batch_spans: 8192,
            writers: 2,
            retry_after: Duration::from_secs(1),
            limits: Limits::default(),
            // OpenTelemetry exporters give up after 10 s by default: waiting longer would
            // only store spans that are being sent again.
            write_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The queue is full: retry after the delay.
    #[error("the ingest queue is full; retry in {} s", retry_after.as_secs_f64())]
    Busy { retry_after: Duration },
    /// The receivers are stopping and take nothing new.
    #[error("the receiver is shutting down")]
    ShuttingDown,
    /// PostgreSQL refused the data itself; sending it again would fail again.
    #[error("the spans were refused by the database: {0}")]
    Refused(String),
    /// PostgreSQL could not be reached or failed; nothing of the request was stored. The
    /// database's own message (which may name hosts, roles or tables) is for our log,
    /// not for clients: it is kept here but not displayed.
    #[error("the database is unavailable; nothing was stored, retry later")]
    Unavailable(String),
}

/// Counters since start.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    spans: AtomicU64,
    batches: AtomicU64,
    refused_busy: AtomicU64,
    refused_limits: AtomicU64,
    rejected_out_of_window: AtomicU64,
}

struct Pending {
    records: Vec<SpanRow>,
    done: oneshot::Sender<Result<(), IngestError>>,
    /// Returned to the span budget when the request is finished with.
    _permit: OwnedSemaphorePermit,
}

/// A handle to submit spans; cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<Pending>,
    budget: Arc<Semaphore>,
    counters: Arc<Counters>,
    config: Arc<IngestConfig>,
    admission: Arc<Admission>,
}

/// The writer tasks. [`Writers::drained`] closes the queue and waits until every
/// request in it is answered.
pub struct Writers {
    tasks: Vec<JoinHandle<()>>,
    closing: watch::Sender<bool>,
}

impl Writers {
    /// Closes the queue to new requests (they get [`IngestError::ShuttingDown`]), then
    /// resolves once everything already queued is written and answered. Handles may
    /// outlive this; they only cannot submit any more.
    pub async fn drained(self) {
        let _ = self.closing.send(true);
        for t in self.tasks {
            if let Err(e) = t.await {
                tracing::error!(error = %e, "OTLP writer task failed");
            }
        }
    }
}

/// Starts the writers on `pool` (which should have at least `config.writers`
/// connections to itself).
pub fn start(pool: Pool, config: IngestConfig) -> (Ingest, Writers) {
    let config = Arc::new(IngestConfig {
        max_queued_requests: config.max_queued_requests.max(1),
        max_queued_spans: config.max_queued_spans.clamp(1, Semaphore::MAX_PERMITS),
        batch_spans: config.batch_spans.max(1),
        writers: config.writers.max(1),
        retry_after: config.retry_after,
        limits: config.limits.clone(),
        write_timeout: config.write_timeout,
    });
    let (tx, rx) = mpsc::channel(config.max_queued_requests);
    let rx = Arc::new(Mutex::new(rx));
    let counters = Arc::new(Counters::default());
    let (closing, closing_rx) = watch::channel(false);
    let failures = Arc::new(FailureLog::default());
    let tasks = (0..config.writers)
        .map(|_| {
            tokio::spawn(writer(
                pool.clone(),
                rx.clone(),
                closing_rx.clone(),
                counters.clone(),
                failures.clone(),
                config.clone(),
            ))
        })
        .collect();
    let ingest = Ingest {
        tx,
        budget: Arc::new(Semaphore::new(config.max_queued_spans)),
        counters,
        admission: Arc::new(Admission::new(config.limits.clone())),
        config,
    };
    (ingest, Writers { tasks, closing })
}

impl Ingest {
    /// Queues `records` and waits until they are committed. Fails at once, without
    /// waiting, when the queue is full.
    pub async fn submit(&self, records: Vec<SpanRow>) -> Result<(), IngestError> {
        if records.is_empty() {
            return Ok(());
        }
        // A request larger than the whole budget still gets in when nothing else waits.
        let want = records.len().min(self.config.max_queued_spans);
        let permit = u32::try_from(want)
            .ok()
            .and_then(|n| self.budget.clone().try_acquire_many_owned(n).ok())
            .ok_or_else(|| self.busy())?;
        let (done, result) = oneshot::channel();
        self.tx
            .try_send(Pending {
                records,
                done,
                _permit: permit,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => self.busy(),
                mpsc::error::TrySendError::Closed(_) => IngestError::ShuttingDown,
            })?;
        result.await.unwrap_or_else(|_| {
            Err(IngestError::Unavailable(
                "the writer stopped before answering".into(),
            ))
        })
    }

    fn busy(&self) -> IngestError {
        self.counters.refused_busy.fetch_add(1, Relaxed);
        IngestError::Busy {
            retry_after: self.config.retry_after,
        }
    }

    pub fn stats(&self) -> IngestStats {
        IngestStats {
            requests: self.counters.requests.load(Relaxed),
            spans: self.counters.spans.load(Relaxed),
            batches: self.counters.batches.load(Relaxed),
            refused_busy: self.counters.refused_busy.load(Relaxed),
            refused_limits: self.counters.refused_limits.load(Relaxed),
            rejected_out_of_window: self.counters.rejected_out_of_window.load(Relaxed),
            queued_requests: self.tx.max_capacity() - self.tx.capacity(),
        }
    }

    pub fn config(&self) -> &IngestConfig {
        &self.config
    }

    /// The limits and decode budget the receivers check before decoding.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// Counts the outcome of a refused admission (the budget's "busy" with the queue's).
    pub(crate) fn count_refusal(&self, refusal: &Refusal) {
        let counter = match refusal {
            Refusal::Busy => &self.counters.refused_busy,
            Refusal::Invalid(_) | Refusal::TooLarge(_) => &self.counters.refused_limits,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// The span start times accepted now.
    pub fn time_window(&self) -> TimeWindow {
        let l = &self.config.limits;
        TimeWindow::at(chrono::Utc::now(), l.retention, l.max_future)
    }

    /// Counts a request refused for its size before it was even scanned.
    pub(crate) fn count_oversize(&self) {
        self.counters.refused_limits.fetch_add(1, Relaxed);
    }

    /// Counts spans rejected for a time outside the accepted window.
    pub(crate) fn count_out_of_window(&self, spans: u64) {
        if spans > 0 {
            self.counters
                .rejected_out_of_window
                .fetch_add(spans, Relaxed);
        }
    }
}

async fn writer(
    pool: Pool,
    rx: Arc<Mutex<mpsc::Receiver<Pending>>>,
    mut closing: watch::Receiver<bool>,
    counters: Arc<Counters>,
    failures: Arc<FailureLog>,
    config: Arc<IngestConfig>,
) {
    let batch_spans = config.batch_spans;
    loop {
        // Take everything that is waiting (up to the batch size) while holding the
        // receiver, then let the next writer take its turn while this one writes.
        let batch = {
            let mut rx = rx.lock().await;
            let first = loop {
                if *closing.borrow() {
                    // Refuses new requests; the queued ones are still received, then
                    // `recv` returns None.
                    rx.close();
                    break rx.recv().await;
                }
                tokio::select! {
                    p = rx.recv() => break p,
                    changed = closing.changed() => {
                        if changed.is_err() {
                            rx.close();
                            break rx.recv().await;
                        }
                    }
                }
            };
            let Some(first) = first else {
                return;
            };
            let mut spans = first.records.len();
            let mut batch = vec![first];
            while spans < batch_spans {
                match rx.try_recv() {
                    Ok(p) => {
                        spans += p.records.len();
                        batch.push(p);
                    }
                    Err(_) => break,
                }
            }
            batch
        };
        let cx = WriteContext {
            pool: &pool,
            counters: &counters,
            failures: &failures,
            timeout: config.write_timeout,
        };
        write_batch(&cx, batch).await;
    }
}

/// What a writer needs besides its batch.
struct WriteContext<'a> {
    pool: &'a Pool,
    counters: &'a Counters,
    failures: &'a FailureLog,
    timeout: Duration,
}

/// A frozen or unreachable database must not hold a batch (and its clients) forever:
/// past `timeout` the batch fails as `Unavailable`, acknowledging nothing. A connection
/// whose COPY timed out is in an unknown state and leaves the pool.
async fn write_batch(cx: &WriteContext<'_>, batch: Vec<Pending>) {
    let unavailable = |batch: Vec<Pending>, e: &dyn std::fmt::Display| {
        cx.failures.failed(e, batch.len());
        finish_all(
            batch,
            Err(IngestError::Unavailable(e.to_string())),
            cx.counters,
        );
    };
    let client = match tokio::time::timeout(cx.timeout, cx.pool.get()).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return unavailable(batch, &DbError::from(e)),
        Err(_) => {
            let e = format!("no database connection within {:?}", cx.timeout);
            return unavailable(batch, &e);
        }
    };
    let all: Vec<&SpanRow> = batch.iter().flat_map(|p| p.records.iter()).collect();
    let sent = all.len() as u64;
    let result = tokio::time::timeout(cx.timeout, store::ingest::copy_records(&client, &all)).await;
    drop(all);
    let result = match result {
        Ok(r) => r,
        Err(_) => {
            drop(deadpool_postgres::Object::take(client));
            let e = format!("COPY did not finish within {:?}", cx.timeout);
            return unavailable(batch, &e);
        }
    };
    match result {
        // Acknowledge only what the server says it stored.
        Ok(rows) if rows != sent => {
            tracing::error!(rows, sent, "COPY stored another number of rows than sent");
            drop(deadpool_postgres::Object::take(client));
            unavailable(batch, &format!("COPY stored {rows} of {sent} rows"));
        }
        Ok(_) => {
            cx.failures.succeeded();
            finish_all(batch, Ok(()), cx.counters)
        }
        Err(e) if is_data_error(&e) && batch.len() > 1 => {
            // One request's data failed the COPY for everyone: write each request on its
            // own so only the culprit is refused.
            tracing::warn!(error = %e, requests = batch.len(), "OTLP batch refused by the database; retrying its requests one by one");
            let mut requests = batch.into_iter();
            while let Some(p) = requests.next() {
                let copy = store::ingest::copy_records(&client, &p.records);
                let Ok(r) = tokio::time::timeout(cx.timeout, copy).await else {
                    drop(deadpool_postgres::Object::take(client));
                    let rest = std::iter::once(p).chain(requests).collect();
                    let e = format!("COPY did not finish within {:?}", cx.timeout);
                    return unavailable(rest, &e);
                };
                let r = r.map(|_| ()).map_err(|e| classify(&e));
                if let Err(e) = &r {
                    tracing::warn!(error = %e, spans = p.records.len(), "OTLP request not stored");
                }
                finish_all(vec![p], r, cx.counters);
            }
        }
        Err(e) if is_data_error(&e) => {
            tracing::warn!(error = %e, "OTLP request refused by the database");
            finish_all(batch, Err(classify(&e)), cx.counters);
        }
        Err(e) => unavailable(batch, &e),
    }
}

fn finish_all(batch: Vec<Pending>, result: Result<(), IngestError>, counters: &Counters) {
    if result.is_ok() {
        counters.batches.fetch_add(1, Relaxed);
    }
    for p in batch {
        if result.is_ok() {
            counters.requests.fetch_add(1, Relaxed);
            counters.spans.fetch_add(p.records.len() as u64, Relaxed);
        }
        // The requester may have gone (client disconnected); its spans are stored anyway.
        let _ = p.done.send(result.clone());
    }
}

/// Errors caused by the data rather than by the database's state: SQLSTATE classes 22
/// (data exception), 23 (integrity constraint) and 54 (program limit exceeded).
fn is_data_error(e: &DbError) -> bool {
    let DbError::Pg(pg) = e else { return false };
    pg.code()
        .is_some_and(|c| matches!(&c.code()[..2], "22" | "23" | "54"))
}

fn classify(e: &DbError) -> IngestError {
    if is_data_error(e) {
        IngestError::Refused(e.to_string())
    } else {
        IngestError::Unavailable(e.to_string())
    }
}
