//! Counters for `/metrics` (Prometheus text format). Few enough to keep by hand.

use std::sync::atomic::{AtomicU64, Ordering};

use store::ingest::IngestStats;

#[derive(Debug, Default)]
pub struct Metrics {
    pub queries_materialized_view: AtomicU64,
    pub queries_summary_table: AtomicU64,
    pub queries_on_the_fly: AtomicU64,
    pub queries_spans: AtomicU64,
    pub bad_requests: AtomicU64,
    pub server_errors: AtomicU64,
    /// 503s: a full lane or the database unavailable.
    pub unavailable: AtomicU64,
    /// 504s: the statement timeout.
    pub timeouts: AtomicU64,
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

/// Reads the OTLP write path's counters when `/metrics` is scraped. The receivers live in
/// another crate; the service only sees this probe, which the binary wires to them.
pub type IngestProbe = std::sync::Arc<dyn Fn() -> IngestStats + Send + Sync>;

/// Ingest counters, appended to [`render`]'s output when the receivers run.
pub fn render_ingest(out: &mut String, c: &IngestStats) {
    for (name, kind, help, value) in [
        (
            "srql_ingest_requests_total",
            "counter",
            "OTLP export requests whose spans were committed.",
            c.requests,
        ),
        (
            "srql_ingest_spans_total",
            "counter",
            "Spans received over OTLP and committed.",
            c.spans,
        ),
        (
            "srql_ingest_copy_batches_total",
            "counter",
            "COPY statements that committed received spans.",
            c.batches,
        ),
        (
            "srql_ingest_refused_busy_total",
            "counter",
            "OTLP export requests refused with back-pressure because the queue or the decode budget was full.",
            c.refused_busy,
        ),
        (
            "srql_ingest_refused_limits_total",
            "counter",
            "OTLP export requests refused before decoding: too large, too many spans, too deep or malformed.",
            c.refused_limits,
        ),
        (
            "srql_ingest_rejected_out_of_window_spans_total",
            "counter",
            "Spans rejected because their start time lies outside [now - retention, now + max future].",
            c.rejected_out_of_window,
        ),
        (
            "srql_ingest_queued_requests",
            "gauge",
            "OTLP export requests waiting for a writer.",
            c.queued_requests as u64,
        ),
    ] {
        family(out, name, kind, help);
        out.push_str(&format!("{name} {value}\n"));
    }
}

/// What the refresh log says, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct RefreshFacts {
    pub last_ok: Option<store::summaries::RefreshRun>,
    /// Runs in the log by outcome.
    pub outcomes: Vec<(String, i64)>,
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
}

fn seconds(d: chrono::Duration) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

/// The Prometheus text exposition of the counters and, when known, summary freshness.
pub fn render(
    m: &Metrics,
    facts: Option<&RefreshFacts>,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "srql_queries_total",
        "counter",
        "Queries answered, by the path that answered them.",
    );
    for (source, n) in m.queries() {
        out.push_str(&format!("srql_queries_total{{source=\"{source}\"}} {n}\n"));
    }
    family(
        &mut out,
        "srql_query_errors_total",
        "counter",
        "Failed queries by kind.",
    );
    out.push_str(&format!(
        "srql_query_errors_total{{kind=\"bad_request\"}} {}\nsrql_query_errors_total{{kind=\"server\"}} {}\n\
         srql_query_errors_total{{kind=\"unavailable\"}} {}\nsrql_query_errors_total{{kind=\"timeout\"}} {}\n",
        m.bad_requests.load(Ordering::Relaxed),
        m.server_errors.load(Ordering::Relaxed),
        m.unavailable.load(Ordering::Relaxed),
        m.timeouts.load(Ordering::Relaxed)
    ));
    let Some(facts) = facts else {
        return out;
    };
    if let Some(run) = &facts.last_ok {
        if let Some(snapshot) = run.snapshot_at {
            family(
                &mut out,
                "srql_summary_age_seconds",
                "gauge",
                "Age of the span data the summaries reflect (last successful refresh).",
            );
            out.push_str(&format!(
                "srql_summary_age_seconds {}\n",
                seconds(now - snapshot)
            ));
        }
        if let Some(d) = run.duration() {
            family(
                &mut out,
                "srql_summary_refresh_duration_seconds",
                "gauge",
                "Duration of the last successful refresh.",
            );
            out.push_str(&format!(
                "srql_summary_refresh_duration_seconds {}\n",
                seconds(d)
            ));
        }
        family(
            &mut out,
            "srql_summary_rows",
            "gauge",
            "Trace summaries after the last successful refresh.",
        );
        out.push_str(&format!("srql_summary_rows {}\n", run.rows.unwrap_or(0)));
    }
    family(
        &mut out,
        "srql_summary_refresh_runs",
        "gauge",
        "Refresh runs in the log (recent days), by outcome.",
    );
    for (outcome, n) in &facts.outcomes {
        out.push_str(&format!(
            "srql_summary_refresh_runs{{outcome=\"{outcome}\"}} {n}\n"
        ));
    }
    out
}

/// Incremental-mode freshness, appended to [`render`]'s output: the arrival-to-summary
/// lag the last drain measured, and what still waits in the log.
pub fn render_freshness(out: &mut String, f: &store::summaries::Freshness) {
    if let Some(lag) = &f.last_lag {
        family(
            out,
            "srql_summary_lag_seconds",
            "summary",
            "Span arrival to its trace's summary row committed, over the last drain that applied any (incremental mode).",
        );
        for (q, v) in [
            ("0.5", lag.p50_seconds),
            ("0.99", lag.p99_seconds),
            ("1", lag.max_seconds),
        ] {
            out.push_str(&format!(
                "srql_summary_lag_seconds{{quantile=\"{q}\"}} {v}\n"
            ));
        }
    }
    family(
        out,
        "srql_summary_pending_entries",
        "gauge",
        "Touched traces waiting in the log for the next drain (incremental mode).",
    );
    out.push_str(&format!(
        "srql_summary_pending_entries {}\n",
        f.pending_entries
    ));
    family(
        out,
        "srql_summary_pending_oldest_seconds",
        "gauge",
        "How long the oldest waiting arrival has waited; 0 when none (incremental mode).",
    );
    out.push_str(&format!(
        "srql_summary_pending_oldest_seconds {}\n",
        f.oldest_pending_seconds.unwrap_or(0.0)
    ));
}

/// Sealing of day partitions into columnar storage (store::sealing).
pub fn render_sealing(out: &mut String, s: &store::sealing::SealingStatus) {
    let gauges: [(&str, &str, f64); 6] = [
        (
            "srql_sealing_available",
            "1 when citus_columnar is installed and days can be sealed, else 0.",
            if s.available { 1.0 } else { 0.0 },
        ),
        (
            "srql_sealed_days",
            "Day partitions stored as columnar.",
            s.sealed_days as f64,
        ),
        (
            "srql_heap_days",
            "Day partitions still stored as heap (recent days, or not yet sealed).",
            s.heap_days as f64,
        ),
        (
            "srql_sealing_in_progress_days",
            "Days whose sealing began and has not finished (resumed at the next round).",
            s.in_progress.len() as f64,
        ),
        (
            "srql_sealed_bytes",
            "What the sealed days take now, tables and indexes.",
            s.sealed_bytes as f64,
        ),
        (
            "srql_sealed_heap_bytes",
            "What the sealed days took as heap before sealing, tables and indexes.",
            s.sealed_heap_bytes as f64,
        ),
    ];
    for (name, help, value) in gauges {
        family(out, name, "gauge", help);
        out.push_str(&format!("{name} {value}\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};

    #[test]
    fn renders_ingest_counters() {
        let mut out = String::new();
        render_ingest(
            &mut out,
            &IngestStats {
                requests: 3,
                spans: 1536,
                batches: 2,
                refused_busy: 1,
                refused_limits: 5,
                rejected_out_of_window: 6,
                queued_requests: 4,
            },
        );
        for line in [
            "# TYPE srql_ingest_spans_total counter",
            "srql_ingest_requests_total 3",
            "srql_ingest_spans_total 1536",
            "srql_ingest_copy_batches_total 2",
            "srql_ingest_refused_busy_total 1",
            "srql_ingest_refused_limits_total 5",
            "srql_ingest_rejected_out_of_window_spans_total 6",
            "# TYPE srql_ingest_queued_requests gauge",
            "srql_ingest_queued_requests 4",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing from\n{out}");
        }
    }

    #[test]
    fn renders_counters_and_freshness() {
        let m = Metrics::default();
        m.count_source("materialized_view");
        m.count_source("materialized_view");
        m.count_source("on_the_fly");
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        let run = store::summaries::RefreshRun {
            id: 1,
            method: store::summaries::RunMethod::Concurrently,
            started_at: now - Duration::seconds(100),
            finished_at: Some(now - Duration::seconds(70)),
            snapshot_at: Some(now - Duration::seconds(100)),
            outcome: store::summaries::RunOutcome::Ok,
            rows: Some(1234),
            error: None,
            ..Default::default()
        };
        let facts = RefreshFacts {
            last_ok: Some(run),
            outcomes: vec![("ok".into(), 3), ("skipped".into(), 1)],
        };
        let text = render(&m, Some(&facts), now);
        for line in [
            "srql_queries_total{source=\"materialized_view\"} 2",
            "srql_queries_total{source=\"on_the_fly\"} 1",
            "srql_summary_age_seconds 100",
            "srql_summary_refresh_duration_seconds 30",
            "srql_summary_rows 1234",
            "srql_summary_refresh_runs{outcome=\"skipped\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Without the database, the counters are still there.
        let bare = render(&m, None, now);
        assert!(bare.contains("srql_queries_total"));
        assert!(!bare.contains("srql_summary_age_seconds"));
    }
}

#[cfg(test)]
mod freshness_tests {
    use super::*;

    #[test]
    fn renders_drain_lag_and_backlog() {
        let f = store::summaries::Freshness {
            mode: store::summaries::SummaryMode::Incremental,
            age_seconds: Some(1.5),
            pending_entries: 42,
            oldest_pending_seconds: Some(0.75),
            last_lag: Some(store::summaries::DrainLag {
                p50_seconds: 0.5,
                p99_seconds: 1.25,
                max_seconds: 2.0,
                measured_at: None,
            }),
        };
        let mut text = String::new();
        render_freshness(&mut text, &f);
        for line in [
            "srql_summary_lag_seconds{quantile=\"0.5\"} 0.5",
            "srql_summary_lag_seconds{quantile=\"0.99\"} 1.25",
            "srql_summary_lag_seconds{quantile=\"1\"} 2",
            "srql_summary_pending_entries 42",
            "srql_summary_pending_oldest_seconds 0.75",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
