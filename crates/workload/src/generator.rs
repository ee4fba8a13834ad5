//! Traces by index: the iterator over a workload and the follow-mode entry point.

use std::ops::Range;

use chrono::{DateTime, Utc};

use crate::config::WorkloadConfig;
use crate::prng::stream_key;
use crate::span::Trace;
use crate::trace_builder::{self, PURPOSE_START_TIME};

/// Trace `index` of `seed`, its root starting at `start` (follow mode: the caller picks
/// the time, e.g. now, to keep inserting at a rate).
///
/// The content and identifiers depend on `(seed, index)` only; the start time only moves
/// the trace. Two traces with the same `(seed, index)` share a trace id, so a follow-mode
/// run after a bulk load of the same seed should continue at `config.traces`.
pub fn trace_at(seed: u64, index: u64, start: DateTime<Utc>) -> Trace {
    trace_builder::build(seed, index, unix_nanos(start))
}

/// Generates the traces of a [`WorkloadConfig`] in index order (and so in time order).
///
/// Each trace depends only on `(seed, index)`, never on the traces before it, so a
/// workload can be split across threads with [`Generator::with_indices`], or resumed.
#[derive(Debug, Clone)]
pub struct Generator {
    config: WorkloadConfig,
    start_ns: i64,
    range_ns: u64,
    next: u64,
    end: u64,
}

impl Generator {
    /// All traces `0..config.traces`.
    pub fn new(config: WorkloadConfig) -> Self {
        Self::with_indices(config, 0..config.traces)
    }

    /// Only traces `indices` (clamped to `0..config.traces`); each is the same trace the
    /// full generator yields at that index.
    pub fn with_indices(config: WorkloadConfig, indices: Range<u64>) -> Self {
        let start_ns = unix_nanos(config.start);
        // An empty or inverted range puts every trace at `start`.
        let range_ns = u64::try_from(unix_nanos(config.end).saturating_sub(start_ns)).unwrap_or(0);
        let end = indices.end.min(config.traces);
        Self {
            config,
            start_ns,
            range_ns,
            next: indices.start.min(end),
            end,
        }
    }

    pub fn config(&self) -> &WorkloadConfig {
        &self.config
    }

    /// Traces not yet yielded.
    pub fn remaining(&self) -> u64 {
        self.end - self.next
    }

    /// Trace `index` of the workload, without generating any other.
    pub fn trace(&self, index: u64) -> Trace {
        trace_builder::build(self.config.seed, index, self.trace_start_nanos(index))
    }

    /// When trace `index` starts.
    pub fn trace_start(&self, index: u64) -> DateTime<Utc> {
        DateTime::from_timestamp_nanos(self.trace_start_nanos(index))
    }

    /// Stratified uniform: trace `i` starts at a uniform point of the `i`-th of `traces`
    /// equal slots of the range. The set covers the range uniformly like independent draws
    /// would, with less clumping, and the iterator yields traces in time order.
    fn trace_start_nanos(&self, index: u64) -> i64 {
        let traces = u128::from(self.config.traces.max(1));
        let range = u128::from(self.range_ns);
        // Products of two values below 2^64 fit in u128.
        let slot_start = u128::from(index) * range / traces;
        let slot_end = (u128::from(index) + 1) * range / traces;
        let jitter = u128::from(stream_key(self.config.seed, index, PURPOSE_START_TIME) >> 32);
        let offset = slot_start + (((slot_end - slot_start) * jitter) >> 32);
        self.start_ns
            .saturating_add(i64::try_from(offset).unwrap_or(i64::MAX))
    }
}

impl Iterator for Generator {
    type Item = Trace;

    fn next(&mut self) -> Option<Trace> {
        if self.next >= self.end {
            return None;
        }
        let trace = self.trace(self.next);
        self.next += 1;
        Some(trace)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = usize::try_from(self.remaining()).ok();
        (remaining.unwrap_or(usize::MAX), remaining)
    }

    /// Skipping is free: no trace depends on the ones before it.
    fn nth(&mut self, n: usize) -> Option<Trace> {
        let skip = u64::try_from(n).unwrap_or(u64::MAX);
        self.next = self.next.saturating_add(skip).min(self.end);
        self.next()
    }
}

/// Unix nanoseconds, saturating outside the years 1677..2262 that an `i64` covers.
fn unix_nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}
