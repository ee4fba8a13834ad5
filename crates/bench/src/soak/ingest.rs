//! OTLP ingest at a steady rate through the real OTLP/gRPC receiver, remembering which
//! spans were acknowledged so the database can be checked for every one of them.
//!
//! A pacer emits whole workload traces as fast as the rate allows (timestamped now, trace
//! indices far from the bulk load's, so their ids are ours alone) and hands them, one
//! request per tick, to a few senders. A sender retries what the receiver refuses with
//! "later" (RESOURCE_EXHAUSTED with RetryInfo, the gRPC form of a 429) and counts it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tokio::sync::mpsc;
use tonic::transport::Channel;

/// Trace indices of the ingested traces: far from the bulk load's (which start at 0),
/// `generate --rate`'s (2^40) and bench-incremental's (2^41).
const BASE_INDEX: u64 = 1 << 42;
/// How often the pacer hands over what is due: at 10k spans/s, about 500 spans per
/// request, near the 512 that `srql generate --via-otlp` sends.
const TICK: Duration = Duration::from_millis(50);
/// Requests in flight at once: enough that the rate holds while each export waits for
/// its COPY on a busy machine (the receiver coalesces what waits into one COPY).
const SENDERS: usize = 8;
/// Tries per request, the first included, while the receiver says "later".
const MAX_ATTEMPTS: u32 = 20;

/// Running totals, read by the progress display.
#[derive(Debug, Default)]
pub struct Counters {
    pub acked_spans: AtomicU64,
    pub refused: AtomicU64,
    pub failed_requests: AtomicU64,
}

pub struct Plan {
    pub endpoint: String,
    pub spans_per_sec: u64,
    pub seed: u64,
    pub deadline: Instant,
    /// Bound on one export call.
    pub timeout: Duration,
    pub counters: Arc<Counters>,
}

/// (trace_id, span_id) of one span, as stored.
pub type SpanKey = (String, String);

#[derive(Debug, Default)]
pub struct Outcome {
    /// Spans handed to the senders.
    pub offered_spans: u64,
    pub requests: u64,
    pub acked_requests: u64,
    /// Every span of every acknowledged request.
    pub acked: Vec<SpanKey>,
    /// Refusals the receiver answered with "later" (each retried).
    pub refused: u64,
    /// Requests that were never acknowledged: timeouts, errors, rejected spans, or still
    /// refused after the last try.
    pub failed_requests: u64,
    pub first_error: Option<String>,
}

struct Batch {
    request: ExportTraceServiceRequest,
    keys: Vec<SpanKey>,
}

pub async fn run(plan: Plan) -> Result<Outcome, String> {
    let client = crate::otlp_export::connect(&plan.endpoint)
        .await
        .map_err(|e| e.to_string())?;
    let plan = Arc::new(plan);
    let (tx, rx) = mpsc::channel::<Batch>(SENDERS * 2);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (client, rx, plan, outcome) =
            (client.clone(), rx.clone(), plan.clone(), outcome.clone());
        senders.push(tokio::spawn(send_loop(client, rx, plan, outcome)));
    }
    let offered = pace(&plan, tx).await?;
    for s in senders {
        s.await.map_err(|e| format!("OTLP sender task: {e}"))?;
    }
    let mut out = std::mem::take(&mut *outcome.lock().map_err(|e| e.to_string())?);
    out.offered_spans = offered;
    Ok(out)
}

/// Emits traces at the rate until the deadline; returns the spans handed over.
async fn pace(plan: &Plan, tx: mpsc::Sender<Batch>) -> Result<u64, String> {
    let started = Instant::now();
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut index, mut emitted) = (0u64, 0u64);
    loop {
        interval.tick().await;
        let now = Instant::now();
        if now >= plan.deadline {
            return Ok(emitted);
        }
        // Due by now since the start, so a late tick catches up rather than losing time.
        let due = (plan.spans_per_sec as f64 * (now - started).as_secs_f64()) as u64;
        let mut spans = Vec::new();
        let at = Utc::now();
        while emitted + (spans.len() as u64) < due {
            spans.extend(workload::trace_at(plan.seed, BASE_INDEX + index, at).spans);
            index += 1;
        }
        for chunk in spans.chunks(crate::otlp_client::BATCH_SPANS) {
            let request = crate::otlp_client::workload_request(chunk).map_err(|e| e.to_string())?;
            let keys = chunk
                .iter()
                .map(|s| (s.trace_id.clone(), s.span_id.clone()))
                .collect();
            // Senders that cannot keep up slow the pacer; the report shows the rate reached.
            match tokio::time::timeout_at(plan.deadline.into(), tx.send(Batch { request, keys }))
                .await
            {
                Ok(Ok(())) => emitted += chunk.len() as u64,
                Ok(Err(_)) | Err(_) => return Ok(emitted),
            }
        }
    }
}

async fn send_loop(
    mut client: TraceServiceClient<Channel>,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Batch>>>,
    plan: Arc<Plan>,
    outcome: Arc<Mutex<Outcome>>,
) {
    loop {
        // What is still queued at the deadline is not sent: the window is over.
        let next =
            tokio::time::timeout_at(plan.deadline.into(), async { rx.lock().await.recv().await })
                .await;
        let Ok(Some(batch)) = next else { return };
        let spans = batch.keys.len() as u64;
        let (result, refused) = export(&mut client, &batch.request, &plan).await;
        plan.counters.refused.fetch_add(refused, Relaxed);
        match &result {
            Ok(()) => {
                plan.counters.acked_spans.fetch_add(spans, Relaxed);
            }
            Err(_) => {
                plan.counters.failed_requests.fetch_add(1, Relaxed);
            }
        }
        let Ok(mut out) = outcome.lock() else { return };
        out.requests += 1;
        out.refused += refused;
        match result {
            Ok(()) => {
                out.acked_requests += 1;
                out.acked.extend(batch.keys);
            }
            Err(e) => {
                out.failed_requests += 1;
                out.first_error.get_or_insert(e);
            }
        }
    }
}

/// One request until acknowledged, or failed; also how many times it was refused.
async fn export(
    client: &mut TraceServiceClient<Channel>,
    request: &ExportTraceServiceRequest,
    plan: &Plan,
) -> (Result<(), String>, u64) {
    let mut refused = 0;
    for attempt in 1..=MAX_ATTEMPTS {
        let answer = tokio::time::timeout(plan.timeout, client.export(request.clone())).await;
        let status = match answer {
            Err(_) => {
                return (
                    Err(format!("no answer within {} s", plan.timeout.as_secs())),
                    refused,
                )
            }
            Ok(Ok(response)) => {
                let rejected = response
                    .into_inner()
                    .partial_success
                    .map_or(0, |p| p.rejected_spans);
                return if rejected > 0 {
                    (
                        Err(format!("the receiver rejected {rejected} spans")),
                        refused,
                    )
                } else {
                    (Ok(()), refused)
                };
            }
            Ok(Err(status)) => status,
        };
        if status.code() == tonic::Code::ResourceExhausted {
            refused += 1;
        }
        match crate::otlp_export::retry_delay(&status) {
            Some(delay) if attempt < MAX_ATTEMPTS => tokio::time::sleep(delay).await,
            _ => return (Err(format!("export: {status}")), refused),
        }
    }
    (Err("retries exhausted".into()), refused)
}
