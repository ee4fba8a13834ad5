//! The query clients: each on its own keep-alive connection, looping over the mix until
//! the window closes, every request bounded by the client timeout.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::mix;
use super::results::{Outcome, Sample};
use crate::summaries::http_client::HttpClient;

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

#[cfg(test)]
mod tests {
    use super::*;

    /// A service that accepts connections and never answers: the client gives up on each
    /// request at the timeout, counts it, and stops at the deadline rather than hanging.
    #[tokio::test]
    async fn a_service_that_never_answers_yields_timeouts_not_a_hang() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                open.push(stream);
            }
        });
        let started = Instant::now();
        let counters = Arc::new(Counters::default());
        let plan = Arc::new(Plan {
            addr,
            started,
            deadline: started + Duration::from_millis(500),
            timeout: Duration::from_millis(200),
            trace_ids: Arc::new(vec!["0123456789abcdef0123456789abcdef".into()]),
            counters: counters.clone(),
        });
        let samples = tokio::time::timeout(Duration::from_secs(5), run(0, plan))
            .await
            .expect("the client stops by the deadline plus one timeout");
        held.abort();
        assert!(!samples.is_empty());
        assert!(samples.iter().all(|s| s.outcome == Outcome::Timeout));
        assert!(samples
            .iter()
            .all(|s| s.latency >= Duration::from_millis(200)));
        assert_eq!(
            counters.requests.load(Relaxed),
            samples.len() as u64,
            "every request counted"
        );
        assert_eq!(counters.errors.load(Relaxed), samples.len() as u64);
    }
}
