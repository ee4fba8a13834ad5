//! Timing one query repeatedly and summarising the samples.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::api::{Path, QueryError, SrqlClient};

/// Percentiles of one series of timed requests, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub runs: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

/// Nearest-rank percentiles: every figure is a latency that was really observed, which
/// matters with the handful of runs the slow path gets (its p99 is then its maximum).
pub fn summarize(samples: &[Duration]) -> Option<LatencySummary> {
    if samples.is_empty() {
        return None;
    }
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let rank = |p: f64| {
        let i = (p / 100.0 * ms.len() as f64).ceil() as usize;
        ms[i.clamp(1, ms.len()) - 1]
    };
    Some(LatencySummary {
        runs: ms.len(),
        p50_ms: rank(50.0),
        p90_ms: rank(90.0),
        p95_ms: rank(95.0),
        p99_ms: rank(99.0),
        max_ms: ms[ms.len() - 1],
        mean_ms: ms.iter().sum::<f64>() / ms.len() as f64,
    })
}

/// How many times to run a query.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RunPolicy {
    /// Untimed runs first, so caches and the connection pool are warm.
    pub warmup: usize,
    pub min_runs: usize,
    pub max_runs: usize,
    /// Past `min_runs`, stop once the timed runs took this many seconds: a slow path gets
    /// few runs, a fast one many, and the whole benchmark keeps to its time budget.
    pub budget_secs: f64,
}

impl RunPolicy {
    /// Upper bound on requests, for progress bars.
    pub fn max_requests(&self) -> usize {
        self.warmup + self.max_runs
    }
}

/// The outcome of timing one query on one path.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Measurement {
    Measured(LatencySummary),
    Skipped { reason: String },
}

impl Measurement {
    pub fn latency(&self) -> Option<&LatencySummary> {
        match self {
            Measurement::Measured(l) => Some(l),
            Measurement::Skipped { .. } => None,
        }
    }
}

/// Times `srql` on `path` (from `cursor`) under `policy`, calling `progress` with the
/// number of requests sent so far. A timeout turns into a skipped measurement; any other
/// failure is an error.
pub async fn measure(
    client: &mut SrqlClient,
    srql: &str,
    cursor: Option<&str>,
    path: Path,
    policy: RunPolicy,
    progress: impl Fn(usize),
) -> Result<Measurement, String> {
    let mut samples = Vec::with_capacity(policy.max_runs);
    let mut spent = Duration::ZERO;
    for i in 0..policy.max_requests() {
        let elapsed = match client.query(srql, path, cursor).await {
            Ok((elapsed, _)) => elapsed,
            Err(QueryError::Timeout(t)) => {
                return Ok(Measurement::Skipped {
                    reason: format!("timed out (no response within {} s)", t.as_secs()),
                })
            }
            Err(e) => return Err(e.to_string()),
        };
        progress(i + 1);
        if i < policy.warmup {
            continue;
        }
        samples.push(elapsed);
        spent += elapsed;
        if samples.len() >= policy.min_runs && spent.as_secs_f64() >= policy.budget_secs {
            break;
        }
    }
    Ok(summarize(&samples).map_or_else(
        || Measurement::Skipped {
            reason: "no timed runs requested".into(),
        },
        Measurement::Measured,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn nearest_rank_percentiles() {
        let s = summarize(&ms(&(1..=100).rev().collect::<Vec<_>>())).unwrap();
        assert_eq!(
            (s.runs, s.p50_ms, s.p90_ms, s.p95_ms, s.p99_ms, s.max_ms),
            (100, 50.0, 90.0, 95.0, 99.0, 100.0)
        );
        assert!((s.mean_ms - 50.5).abs() < 1e-9);
        let few = summarize(&ms(&[30, 10, 20])).unwrap();
        assert_eq!((few.p50_ms, few.p95_ms, few.p99_ms), (20.0, 30.0, 30.0));
        let one = summarize(&ms(&[7])).unwrap();
        assert_eq!((one.p50_ms, one.p99_ms), (7.0, 7.0));
        assert!(summarize(&[]).is_none());
    }
}
