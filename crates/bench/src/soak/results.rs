//! What one soak run measured, as written to soak.json and rendered into BENCHMARKS.md,
//! and the arithmetic from raw samples to those figures.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::mix::MIX;
use crate::summaries::latency::{summarize, LatencySummary};
use crate::summaries::machine::Machine;

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx response.
    Ok,
    /// Any other status.
    Status(u16),
    /// No complete response within the client timeout.
    Timeout,
    /// The connection failed, or the response could not be read.
    Transport,
}

/// One request as a client saw it.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Index into [`MIX`].
    pub kind: usize,
    /// When the answer (or the giving up) came, from the start of the window.
    pub end_secs: f64,
    /// From sending to the end of the answer, or to giving up.
    pub latency: Duration,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Serialize)]
pub struct SoakResults {
    pub started_at: DateTime<Utc>,
    pub command: String,
    pub machine: Machine,
    /// Share of the machine's CPU that other processes used during the window (the
    /// benchmark shares its machine; figures are only comparable with this beside them).
    pub other_cpu_share: Option<f64>,
    pub settings: Settings,
    pub load: Load,
    pub queries: Queries,
    pub ingest: Ingest,
    /// Per second of the window, for the plot.
    pub timeline: Vec<Second>,
    pub total_secs: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// The scale point's name, or the span count when `--spans` replaced it.
    pub scale: String,
    pub clients: usize,
    pub seconds: u64,
    pub otlp_rate: u64,
    pub timeout_secs: u64,
    pub seed: u64,
    /// How the summaries were maintained, as the database said after the window.
    pub summary_mode: store::summaries::SummaryMode,
}

#[derive(Debug, Clone, Serialize)]
pub struct Load {
    pub spans: u64,
    pub traces: u64,
    pub secs: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Queries {
    /// The window: from the first request to the last answer.
    pub secs: f64,
    #[serde(flatten)]
    pub all: KindResult,
    pub per_sec: f64,
    pub kinds: Vec<KindResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KindResult {
    pub name: &'static str,
    pub title: &'static str,
    pub requests: u64,
    pub ok: u64,
    /// `non_2xx + timeouts + transport`.
    pub errors: u64,
    pub non_2xx: u64,
    pub timeouts: u64,
    pub transport: u64,
    /// Statuses other than 2xx and how often each came.
    pub statuses: Vec<(u16, u64)>,
    /// Every request, failed ones included (a timeout counts as the timeout), so a stall
    /// shows in the percentiles and not only in the error count.
    pub latency: Option<LatencySummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ingest {
    pub target_spans_per_sec: u64,
    pub offered_spans: u64,
    pub acked_spans: u64,
    pub acked_spans_per_sec: f64,
    pub requests: u64,
    pub acked_requests: u64,
    /// Answers of RESOURCE_EXHAUSTED (429 in OTLP/HTTP terms); each was retried.
    pub refused: u64,
    pub failed_requests: u64,
    /// Acknowledged spans not found in `otel_traces` afterwards.
    pub lost_spans: u64,
    pub first_error: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Second {
    pub second: u64,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// The figures of `samples`, all kinds together under `name`.
fn kind_result(name: &'static str, title: &'static str, samples: &[&Sample]) -> KindResult {
    let count =
        |f: &dyn Fn(Outcome) -> bool| samples.iter().filter(|s| f(s.outcome)).count() as u64;
    let mut statuses: Vec<(u16, u64)> = Vec::new();
    for s in samples {
        if let Outcome::Status(code) = s.outcome {
            match statuses.iter_mut().find(|(c, _)| *c == code) {
                Some((_, n)) => *n += 1,
                None => statuses.push((code, 1)),
            }
        }
    }
    statuses.sort_unstable();
    let non_2xx = count(&|o| matches!(o, Outcome::Status(_)));
    let timeouts = count(&|o| o == Outcome::Timeout);
    let transport = count(&|o| o == Outcome::Transport);
    let latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    KindResult {
        name,
        title,
        requests: samples.len() as u64,
        ok: count(&|o| o == Outcome::Ok),
        errors: non_2xx + timeouts + transport,
        non_2xx,
        timeouts,
        transport,
        statuses,
        latency: summarize(&latencies),
    }
}

/// Overall and per-kind figures over a window of `secs` seconds.
pub fn queries(samples: &[Sample], secs: f64) -> Queries {
    let all: Vec<&Sample> = samples.iter().collect();
    let kinds = MIX
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let of_kind: Vec<&Sample> = samples.iter().filter(|s| s.kind == i).collect();
            kind_result(k.name, k.title, &of_kind)
        })
        .collect();
    Queries {
        secs,
        all: kind_result("all", "all requests", &all),
        per_sec: samples.len() as f64 / secs.max(1e-9),
        kinds,
    }
}

/// Requests, errors and latency per whole second of the window, by when they ended.
pub fn timeline(samples: &[Sample], seconds: u64) -> Vec<Second> {
    // A request still running at the window's end is placed in its last second.
    let last = seconds.max(1) - 1;
    let mut buckets: Vec<Vec<&Sample>> = vec![Vec::new(); last as usize + 1];
    for s in samples {
        let i = (s.end_secs.max(0.0) as u64).min(last) as usize;
        buckets[i].push(s);
    }
    buckets
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let l = summarize(&b.iter().map(|s| s.latency).collect::<Vec<_>>());
            Second {
                second: i as u64,
                requests: b.len() as u64,
                errors: b.iter().filter(|s| s.outcome != Outcome::Ok).count() as u64,
                p50_ms: l.map(|l| l.p50_ms),
                p99_ms: l.map(|l| l.p99_ms),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(kind: usize, end_secs: f64, ms: u64, outcome: Outcome) -> Sample {
        Sample {
            kind,
            end_secs,
            latency: Duration::from_millis(ms),
            outcome,
        }
    }

    #[test]
    fn errors_are_every_failure_and_kinds_add_up() {
        let samples = [
            sample(0, 0.1, 5, Outcome::Ok),
            sample(0, 0.2, 7, Outcome::Status(500)),
            sample(1, 1.5, 9, Outcome::Status(429)),
            sample(1, 1.6, 9, Outcome::Status(500)),
            sample(2, 2.9, 2000, Outcome::Timeout),
            sample(3, 3.5, 1, Outcome::Transport),
        ];
        let q = queries(&samples, 2.0);
        assert_eq!(q.all.requests, 6);
        assert_eq!(q.all.ok, 1);
        assert_eq!(
            (q.all.errors, q.all.non_2xx, q.all.timeouts, q.all.transport),
            (5, 3, 1, 1)
        );
        assert_eq!(q.all.statuses, vec![(429, 1), (500, 2)]);
        assert_eq!(q.per_sec, 3.0);
        assert_eq!(q.kinds.len(), MIX.len());
        assert_eq!(q.kinds.iter().map(|k| k.requests).sum::<u64>(), 6);
        assert_eq!(q.kinds.iter().map(|k| k.errors).sum::<u64>(), 5);
        assert_eq!(q.all.latency.unwrap().max_ms, 2000.0, "a timeout counts");
        assert!(q.kinds[MIX.len() - 1].latency.is_none());
    }

    #[test]
    fn timeline_buckets_by_second_and_keeps_late_answers() {
        let samples = [
            sample(0, 0.1, 5, Outcome::Ok),
            sample(0, 0.9, 15, Outcome::Ok),
            sample(0, 2.5, 1, Outcome::Timeout),
            sample(0, 7.0, 3, Outcome::Ok),
        ];
        let t = timeline(&samples, 3);
        assert_eq!(t.len(), 3);
        assert_eq!(
            t.iter().map(|s| (s.requests, s.errors)).collect::<Vec<_>>(),
            [(2, 0), (0, 0), (2, 1)]
        );
        assert_eq!((t[0].p50_ms, t[0].p99_ms), (Some(5.0), Some(15.0)));
        assert_eq!(t[1].p50_ms, None);
    }
}
