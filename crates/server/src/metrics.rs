//! Counters for `/metrics` (Prometheus text format). Few enough to keep by hand.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    pub queries_materialized_view: AtomicU64,
    pub queries_summary_table: AtomicU64,
    pub queries_on_the_fly: AtomicU64,
    pub queries_spans: AtomicU64,
    pub bad_requests: AtomicU64,
    pub server_errors: AtomicU64,
}

impl Metrics {
    pub fn count_source(&self, label: &str) {
        let c = match label {
            "materialized_view" => &self.queries_materialized_view,
            "summary_table" => &self.queries_summary_table,
            "on_the_fly" => &self.queries_on_the_fly,
            _ => &self.queries_spans,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn queries(&self) -> [(&'static str, u64); 4] {
        [
            (
                "materialized_view",
                self.queries_materialized_view.load(Ordering::Relaxed),
            ),
            (
                "summary_table",
                self.queries_summary_table.load(Ordering::Relaxed),
            ),
            (
                "on_the_fly",
                self.queries_on_the_fly.load(Ordering::Relaxed),
            ),
            ("spans", self.queries_spans.load(Ordering::Relaxed)),
        ]
    }
}
