//! The query clients: each on its own keep-alive connection, looping over the mix until
//! the window closes, every request bounded by the client timeout.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::mix;
use super::results::{Outcome, Sample};
use crate::bench::http_client::HttpClient;

/// Running totals, read by the progress display.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
}

/// What every client shares.
pub struct Plan {
    pub addr: SocketAddr,
    pub started: Instant,
    pub deadline: Instant,
    pub timeout: Duration,
    /// Trace ids the lookups rotate through (never empty).
    pub trace_ids: Arc<Vec<String>>,
    pub counters: Arc<Counters>,
}

/// Client `id`'s requests until the deadline. Each client starts at its own place in the
/// round, so at any moment the kinds are spread across the clients.
pub async fn run(id: usize, plan: Arc<Plan>) -> Vec<Sample> {
    let round = mix::round();
    let mut samples = Vec::new();
    let mut http: Option<HttpClient> = None;
    let mut i = id;
    while Instant::now() < plan.deadline {
        let kind = round[i % round.len()];
        let trace_id = &plan.trace_ids[i % plan.trace_ids.len()];
        i += 1;
        let body = json!({ "query": mix::srql(&mix::MIX[kind], trace_id) })
            .to_string()
            .into_bytes();
        let sent = Instant::now();
        let outcome =
            match tokio::time::timeout(plan.timeout, request(&mut http, plan.addr, &body)).await {
                Ok(Ok(status)) if (200..300).contains(&status) => Outcome::Ok,
                Ok(Ok(status)) => Outcome::Status(status),
                Ok(Err(_)) => Outcome::Transport,
                Err(_) => Outcome::Timeout,
            };
        if !matches!(outcome, Outcome::Ok | Outcome::Status(_)) {
            // A late answer would be read as the next request's: start afresh.
            http = None;
        }
        let now = Instant::now();
        plan.counters.requests.fetch_add(1, Relaxed);
        if outcome != Outcome::Ok {
            plan.counters.errors.fetch_add(1, Relaxed);
        }
        samples.push(Sample {
            kind,
            end_secs: (now - plan.started).as_secs_f64(),
            latency: now - sent,
            outcome,
        });
        if outcome == Outcome::Transport {
            // The service refused the connection or dropped it: do not spin on it.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    samples
}

/// One request on the client's connection (made first when there is none); the status.
async fn request(
    http: &mut Option<HttpClient>,
    addr: SocketAddr,
    body: &[u8],
) -> Result<u16, String> {
    let client = match http {
        Some(c) => c,
        None => http.insert(HttpClient::connect(addr).await?),
    };
    match client.post_json("/api/query", body).await {
        Ok(r) => Ok(r.status),
        Err(e) => {
            *http = None;
            Err(e)
        }
    }
}
