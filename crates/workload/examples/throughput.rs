//! Generation rate, single-threaded: `cargo run -p workload --release --example throughput [spans]`.
//!
//! The loader needs 100k spans/s end-to-end into PostgreSQL on 2 cores, so generation on
//! one core must be several times faster than that to stay out of the way.

use std::time::Instant;

use chrono::{Duration, Utc};
use workload::{Generator, WorkloadConfig};

fn main() {
    let spans: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let end = Utc::now();
    let config = WorkloadConfig::for_spans(1, spans, end - Duration::days(7), end);

    let started = Instant::now();
    let mut generated = 0usize;
    let mut bytes = 0usize;
    for trace in Generator::new(config) {
        generated += trace.spans.len();
        // Touch the text so the work cannot be optimised away, and report its volume.
        bytes += trace
            .spans
            .iter()
            .map(|s| s.attributes.len() + s.resource.attributes.len())
            .sum::<usize>();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{generated} spans in {} traces, {secs:.3} s: {:.0} spans/s, {:.0} traces/s ({} attribute bytes)",
        config.traces,
        generated as f64 / secs,
        config.traces as f64 / secs,
        bytes
    );
}
