//! Results on disk: the JSON file (merged by scale point) and the Markdown section
//! between `<!-- distributed:start -->` and `<!-- distributed:end -->`; the same table
//! is printed at the end of each scale point.

use std::path::Path;

use super::{Cpu, Rate, Results, ScaleResult};
use crate::incremental::report::{fmt_count, fmt_secs, median};

/// The BENCHMARKS.md section this writes.
const SECTION: &str = "distributed";

pub fn read(path: &Path) -> Option<Results> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn write(results: &Results, json: &Path, markdown: &Path) -> Result<(), String> {
    let text = serde_json::to_string_pretty(results).map_err(|e| e.to_string())?;
    crate::summaries::write_file(json, &(text + "\n"))?;
    crate::markdown_section::rewrite(markdown, SECTION, &section(results))
}

/// Milliseconds, or `-` when not measured.
pub fn ms(v: Option<f64>) -> String {
    v.map_or_else(
        || "-".into(),
        |v| {
            if v < 10.0 {
                format!("{v:.2} ms")
            } else {
                format!("{v:.0} ms")
            }
        },
    )
}

fn ratio(single: f64, citus: f64) -> String {
    if single > 0.0 && single.is_finite() && citus.is_finite() {
        format!("{:.2}x", citus / single)
    } else {
        "-".into()
    }
}

/// CPU milliseconds per unit (span or trace), coordinator + workers.
fn cpu_per(cpu: Option<Cpu>, units: f64) -> String {
    match cpu {
        Some(c) if units > 0.0 => format!(
            "{:.3} + {:.3}",
            c.coordinator_secs * 1000.0 / units,
            c.workers_secs * 1000.0 / units
        ),
        _ => "-".into(),
    }
}

fn rate_rows(out: &mut String, what: &str, single: &Rate, citus: &Rate) {
    out.push_str(&format!(
        "| {what}, spans/s | {:.0} | {:.0} | {} |\n",
        single.spans_per_sec,
        citus.spans_per_sec,
        ratio(single.spans_per_sec, citus.spans_per_sec)
    ));
    out.push_str(&format!(
        "| {what}, PostgreSQL CPU ms per span (coordinator + workers) | {} | {} | |\n",
        cpu_per(single.cpu, single.spans as f64),
        cpu_per(citus.cpu, citus.spans as f64)
    ));
}

/// One scale point: a row per measure, single node beside Citus.
pub fn table(r: &ScaleResult) -> String {
    let (s, c) = (&r.single, &r.citus);
    let mut out = format!(
        "| scale {} ({} spans) | single node | Citus: coordinator + {} workers, {} shards | Citus / single |\n|---|---|---|---|\n",
        r.scale,
        fmt_count(s.load.spans),
        r.workers,
        r.shard_count
    );
    rate_rows(&mut out, "OTLP ingest", &s.otlp, &c.otlp);
    rate_rows(
        &mut out,
        "bulk load (COPY through otel_traces)",
        &s.load,
        &c.load,
    );
    out.push_str(&format!(
        "| drain of the load's backlog: traces, time | {}, {} | {}, {} | {} |\n",
        s.backlog_drain.traces,
        fmt_secs(s.backlog_drain.secs),
        c.backlog_drain.traces,
        fmt_secs(c.backlog_drain.secs),
        ratio(s.backlog_drain.secs, c.backlog_drain.secs)
    ));
    out.push_str(&format!(
        "| that drain, PostgreSQL CPU ms per trace (coordinator + workers) | {} | {} | |\n",
        cpu_per(s.backlog_drain.cpu, s.backlog_drain.traces as f64),
        cpu_per(c.backlog_drain.cpu, c.backlog_drain.traces as f64)
    ));
    for (ps, pc) in s.first_pages.iter().zip(&c.first_pages) {
        let p50 = |p: &super::FirstPage| p.summaries.map(|l| l.p50_ms);
        let p95 = |p: &super::FirstPage| p.summaries.map(|l| l.p95_ms);
        out.push_str(&format!(
            "| first page, {}: p50 / p95 | {} / {} | {} / {} | {} |\n",
            ps.title,
            ms(p50(ps)),
            ms(p95(ps)),
            ms(p50(pc)),
            ms(p95(pc)),
            match (p50(ps), p50(pc)) {
                (Some(a), Some(b)) => format!("{} ({:+.1} ms)", ratio(a, b), b - a),
                _ => "-".into(),
            }
        ));
    }
    for (ps, pc) in s.first_pages.iter().zip(&c.first_pages) {
        let p50 = |p: &super::FirstPage| p.on_the_fly.map(|l| l.p50_ms);
        out.push_str(&format!(
            "| on the fly, {}: p50 | {} | {} | {} |\n",
            ps.title,
            ms(p50(ps)),
            ms(p50(pc)),
            match (p50(ps), p50(pc)) {
                (Some(a), Some(b)) => ratio(a, b),
                _ => "-".into(),
            }
        ));
    }
    for (cs, cc) in s.cycles.iter().zip(&c.cycles) {
        let (a, b) = (median(&cs.drain_secs), median(&cc.drain_secs));
        out.push_str(&format!(
            "| drain after {} new spans: median time (traces) | {} ({}) | {} ({}) | {} |\n",
            fmt_count(cs.new_spans),
            fmt_secs(a),
            cs.traces,
            fmt_secs(b),
            cc.traces,
            ratio(a, b)
        ));
    }
    for (ls, lc) in s.lag.iter().zip(&c.lag) {
        out.push_str(&format!(
            "| freshness at {} spans/s (achieved): lag p50 / p99; drain p50 | ({:.0}) {} / {}; {} | ({:.0}) {} / {}; {} | |\n",
            ls.rate,
            ls.achieved_rate,
            fmt_secs(ls.p50),
            fmt_secs(ls.p99),
            fmt_secs(ls.drain_p50_secs),
            lc.achieved_rate,
            fmt_secs(lc.p50),
            fmt_secs(lc.p99),
            fmt_secs(lc.drain_p50_secs),
        ));
    }
    out
}

fn section(r: &Results) -> String {
    let mut out = String::new();
    out.push_str("## Distributed (Citus) (`srql bench-distributed`)\n\n");
    out.push_str(&format!(
        "`srql bench-distributed` on {} CPUs, {:.0} GiB, PostgreSQL {}: in one run, the \
         single-node embedded cluster and a Citus cluster the command starts on the same \
         machine (a coordinator and workers on 127.0.0.1, each its own PostgreSQL with the \
         same settings, durable), both in incremental mode. Per side: OTLP ingest into an \
         empty database (`srql bench-otlp`'s client and receivers); the workload bulk-loaded \
         by COPY through `otel_traces` (as every writer does on Citus: captured, routed to \
         its shard by the coordinator); the drain of that load's backlog; first pages of the \
         traces tab's queries through the HTTP API (`srql bench`'s timing); drains after N \
         new spans (`srql bench-incremental`'s cycles) and freshness under sustained ingest \
         (its probes; the run fails unless the summaries are exact afterwards). CPU is the \
         PostgreSQL processes' user + system time from `/proc` over the phase, the \
         coordinator apart from the workers. All the nodes share one machine's cores, so \
         no speed-up is possible here: the figures show what distribution costs. Raw \
         numbers: `bench-results/distributed.json`; the sizing model built from them is in \
         docs/scale-out.md.\n\n",
        r.machine.cpus, r.machine.memory_gib, r.machine.postgres
    ));
    for s in &r.scales {
        out.push_str(&format!(
            "### {} ({}), {}\n\n",
            s.scale,
            fmt_count(s.single.load.spans),
            s.measured_at.format("%Y-%m-%d %H:%M UTC")
        ));
        if let Some(note) = &s.note {
            out.push_str(&format!("{note}\n\n"));
        }
        out.push_str(&table(s));
        out.push('\n');
    }
    out
}
