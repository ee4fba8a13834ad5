//! One log line per outage rather than one per failed batch: while the database is
//! down every batch fails (1,300 warnings in 17 s were seen), which buries everything
//! else. The first failure is logged with its error, then at most one line per
//! [`INTERVAL`] with how many failed meanwhile, and one when writes succeed again.

use std::fmt::Display;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) const INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub(crate) struct FailureLog {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// When the last line was written, while failures go on.
    last_line: Option<Instant>,
    /// Failed batches since the last line.
    unlogged: u64,
    /// Failed batches since the outage began.
    total: u64,
}

impl FailureLog {
    /// A batch of `requests` requests was not stored because of `error`.
    pub(crate) fn failed(&self, error: &dyn Display, requests: usize) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.total += 1;
        let now = Instant::now();
        match s.last_line {
            Some(t) if now.duration_since(t) < INTERVAL => s.unlogged += 1,
            first_or_due => {
                let since_last = s.unlogged;
                tracing::warn!(
                    error = %error,
                    requests,
                    failed_since_last_line = since_last,
                    failed_in_outage = s.total,
                    repeat = first_or_due.is_some(),
                    "OTLP batch not stored: database unavailable; clients are told to retry"
                );
                s.last_line = Some(now);
                s.unlogged = 0;
            }
        }
    }

    /// A batch was stored: ends the outage, if there was one.
    pub(crate) fn succeeded(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.total > 0 {
            tracing::info!(
                failed_batches = s.total,
                "OTLP batches are stored again after database failures"
            );
            *s = State::default();
        }
    }

    #[cfg(test)]
    fn lines_suppressed(&self) -> u64 {
        self.state.lock().map(|s| s.unlogged).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_failure_of_a_burst_is_logged_and_success_resets() {
        let log = FailureLog::default();
        for _ in 0..1300 {
            log.failed(&"connection refused", 1);
        }
        assert_eq!(log.lines_suppressed(), 1299);
        log.succeeded();
        assert_eq!(log.lines_suppressed(), 0);
        log.failed(&"connection refused", 1);
        assert_eq!(log.lines_suppressed(), 0, "a new outage is logged at once");
    }
}
