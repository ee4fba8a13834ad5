//! The soak run's section of BENCHMARKS.md (`<!-- soak:start -->` ... `<!-- soak:end -->`).

use std::fmt::Write;

use super::mix::{self, MIX};
use super::results::{KindResult, SoakResults};
use crate::summaries::latency::LatencySummary;
use crate::summaries::report::{fmt_ms, fmt_secs};

pub const SECTION: &str = "soak";

pub struct Links<'a> {
    pub json: &'a str,
    pub svg: &'a str,
    /// Hand-written notes on the recorded run, included verbatim.
    pub notes: Option<&'a str>,
}

fn latency_cells(l: Option<&LatencySummary>) -> String {
    l.map_or_else(
        || "- | - | - | -".into(),
        |l| {
            format!(
                "{} | {} | {} | {}",
                fmt_ms(l.p50_ms),
                fmt_ms(l.p90_ms),
                fmt_ms(l.p99_ms),
                fmt_ms(l.max_ms)
            )
        },
    )
}

fn errors_cell(k: &KindResult) -> String {
    if k.errors == 0 {
        return "0".into();
    }
    let mut parts: Vec<String> = k
        .statuses
        .iter()
        .map(|(code, n)| format!("{n}× HTTP {code}"))
        .collect();
    if k.timeouts > 0 {
        parts.push(format!("{} timeouts", k.timeouts));
    }
    if k.transport > 0 {
        parts.push(format!("{} connection failures", k.transport));
    }
    format!("**{}** ({})", k.errors, parts.join(", "))
}

/// The section between the markers (markers excluded).
pub fn render(r: &SoakResults, links: &Links) -> String {
    let mut md = String::new();
    let m = &r.machine;
    let s = &r.settings;
    let q = &r.queries;
    let i = &r.ingest;
    let _ = write!(
        md,
        "## Soak: concurrent queries during OTLP ingest (`srql bench-soak`)\n\n\
         Rerun with one command (release build, embedded PostgreSQL):\n\n    \
         cargo run --release -p srql-cli -- --data-dir /tmp/srql-bench bench-soak --write-benchmarks\n\n\
         A fresh database is loaded with the synthetic workload at the scale point and its \
         summaries built; then the service runs in-process as `srql serve` runs it (query \
         API, OTLP receivers, scheduler) on loopback ports. For the window, {clients} \
         clients, each on its own keep-alive connection, send the traces tab's requests \
         in a fixed mix (table below), each bounded by a {timeout} s timeout; meanwhile \
         workload traces stamped with the current time go to the OTLP/gRPC receiver at a \
         steady {rate} spans/s, and the scheduler maintains the summaries ({mode} mode) \
         when due, as in production. Errors are non-2xx answers, timeouts and connection \
         failures. Latency is per request, from sending to the last byte (or to giving \
         up), over every request. Afterwards every acknowledged span is looked up in \
         `otel_traces` by trace and span id. All figures: [{json}]({json}).\n\n\
         Recorded run: `srql {cmd}` on {date}, commit `{commit}`{dirty}; {cpus} CPUs \
         ({cpu}), {mem:.1} GiB memory, PostgreSQL {pg}; {total} in all.{others}\n\n",
        clients = s.clients,
        timeout = s.timeout_secs,
        rate = s.otlp_rate,
        mode = s.summary_mode.as_str(),
        json = links.json,
        cmd = r.command,
        date = r.started_at.format("%Y-%m-%d %H:%M UTC"),
        commit = m.commit,
        dirty = if m.dirty {
            " with uncommitted changes"
        } else {
            ""
        },
        cpus = m.cpus,
        cpu = m.cpu_model,
        mem = m.memory_gib,
        pg = m.postgres,
        total = fmt_secs(r.total_secs),
        others = r.other_cpu_share.map_or(String::new(), |o| format!(
            " Other processes used {:.0}% of the machine's CPU during the window.",
            o * 100.0
        )),
    );
    if let Some(notes) = links.notes {
        let _ = write!(md, "{}\n\n", notes.trim_end());
    }
    let lat = q.all.latency.as_ref();
    let pick = |f: fn(&LatencySummary) -> f64| lat.map_or("-".into(), |l| fmt_ms(f(l)));
    let _ = write!(
        md,
        "### Result at {scale}\n\n| figure | value |\n|---|---|\n\
         | data | {spans} spans, {traces} traces (loaded in {load}) |\n\
         | query clients, window | {clients}, {secs:.1} s |\n\
         | requests (errors included) | {requests} ({per_sec:.1} per second) |\n\
         | latency p50 / p90 / p99 / max | {p50} / {p90} / {p99} / {max} ms |\n\
         | errors | {errors} |\n\
         | OTLP ingest | {acked} spans acknowledged, {achieved:.0} spans/s (target {rate}) |\n\
         | OTLP refused (RESOURCE_EXHAUSTED, 429) | {refused} |\n\
         | OTLP requests not acknowledged | {failed}{why} |\n\
         | acknowledged spans lost | {lost} |\n\n",
        scale = s.scale,
        spans = r.load.spans,
        traces = r.load.traces,
        load = fmt_secs(r.load.secs),
        clients = s.clients,
        secs = q.secs,
        requests = q.all.requests,
        per_sec = q.per_sec,
        p50 = pick(|l| l.p50_ms),
        p90 = pick(|l| l.p90_ms),
        p99 = pick(|l| l.p99_ms),
        max = pick(|l| l.max_ms),
        errors = errors_cell(&q.all),
        acked = i.acked_spans,
        achieved = i.acked_spans_per_sec,
        rate = i.target_spans_per_sec,
        refused = i.refused,
        failed = i.failed_requests,
        why = i.first_error.as_deref().map_or(String::new(), |e| format!(
            " (first: {})",
            e.replace('|', "/")
        )),
        lost = if i.lost_spans == 0 {
            "0".to_string()
        } else {
            format!("**{}**", i.lost_spans)
        },
    );
    md.push_str(
        "### Per request kind\n\n\
         | request | SRQL | share | requests | errors | p50 ms | p90 ms | p99 ms | max ms |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    let weights: usize = MIX.iter().map(|k| k.weight).sum();
    for (kind, k) in MIX.iter().zip(&q.kinds) {
        let _ = writeln!(
            md,
            "| {} | `{}` | {}/{weights} | {} | {} | {} |",
            kind.title,
            mix::srql(kind, "…"),
            kind.weight,
            k.requests,
            errors_cell(k),
            latency_cells(k.latency.as_ref())
        );
    }
    let _ = write!(
        md,
        "\n![requests, errors and latency per second of the soak run]({svg})\n",
        svg = links.svg
    );
    md
}
