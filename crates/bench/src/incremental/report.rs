//! Results on disk: the JSON file (merged by scale point) and the Markdown section
//! between `<!-- incremental:start -->` and `<!-- incremental:end -->`, leaving the rest of
//! the file as it was.

use std::path::Path;

use super::lag::LagResult;
use super::{Results, ScaleResult};

/// The BENCHMARKS.md section this writes.
const SECTION: &str = "incremental";

/// Targets from the issue: a drain covering 2 minutes of 1k spans/s at L under 1 s; lag
/// p99 under 5 s at 10k spans/s.
const DRAIN_TARGET_SECS: f64 = 1.0;
const DRAIN_TARGET_SPANS: u64 = 120_000;
const LAG_TARGET_SECS: f64 = 5.0;
const LAG_TARGET_RATE: u64 = 10_000;

pub fn read(path: &Path) -> Option<Results> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn write(results: &Results, json: &Path, markdown: &Path) -> Result<(), String> {
    if let Some(dir) = json.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(results).map_err(|e| e.to_string())?;
    std::fs::write(json, text + "\n").map_err(|e| format!("{}: {e}", json.display()))?;
    crate::markdown_section::rewrite(markdown, SECTION, &section(results))
}

pub fn median(v: &[f64]) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub(crate) fn fmt_secs(s: f64) -> String {
    if !s.is_finite() {
        "n/a".into()
    } else if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}

pub(crate) fn fmt_count(n: u64) -> String {
    if n >= 1_000_000 {
        format!("{:.1}M", n as f64 / 1e6)
    } else if n >= 1_000 {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

fn section(r: &Results) -> String {
    let mut out = String::new();
    out.push_str("## Incremental summary maintenance\n\n");
    out.push_str(&format!(
        "`srql bench-incremental` on {} CPUs, {:.0} GiB, PostgreSQL {} (embedded cluster, \
         synthetic workload of docs/workload.md). Each scale point is loaded into a fresh \
         database; figures are from `srql_refresh_runs` (drains, refreshes) or measured from \
         outside (lag probes). Raw numbers: `bench-results/incremental.json`.\n\n",
        r.machine.cpus, r.machine.memory_gib, r.machine.postgres
    ));

    out.push_str("### Cost per cycle: drain against full refresh\n\n");
    out.push_str(
        "A drain after N new spans (new traces over two minutes written a COPY per 100 ms, \
         late spans last; median of the repeats) beside a full `REFRESH MATERIALIZED VIEW \
         CONCURRENTLY` of the same data. The drain follows N; the refresh follows the total.\n\n",
    );
    let volumes: Vec<u64> = {
        let mut v: Vec<u64> = r
            .scales
            .iter()
            .flat_map(|s| s.cycles.iter().map(|c| c.new_spans))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    out.push_str("| scale | spans | traces | full refresh |");
    for v in &volumes {
        out.push_str(&format!(" drain, {} new |", fmt_count(*v)));
    }
    out.push_str(" backfill (switch) |\n|---|---|---|---|");
    for _ in &volumes {
        out.push_str("---|");
    }
    out.push_str("---|\n");
    for s in &r.scales {
        out.push_str(&format!(
            "| {} | {} | {} | {} |",
            s.scale,
            fmt_count(s.spans),
            fmt_count(s.traces),
            fmt_secs(median(&s.full_refresh_secs))
        ));
        for v in &volumes {
            match s.cycles.iter().find(|c| c.new_spans == *v) {
                Some(c) => out.push_str(&format!(
                    " {} ({} traces) |",
                    fmt_secs(median(&c.drain_secs)),
                    c.traces
                )),
                None => out.push_str(" |"),
            }
        }
        out.push_str(&format!(" {} |\n", fmt_secs(s.backfill_secs)));
    }

    out.push_str("\n### Freshness under sustained ingest\n\n");
    out.push_str(
        "`crate::load::follow` writes at the rate (late spans delayed by 1% of their generated \
         delay), the service scheduler drains every second. Every 250 ms a probe commits a \
         span (alternately a new trace and a late, older-timestamped span of a summarized \
         one) and is polled every 20 ms until its summary row reflects it: lag is commit to \
         visible row, so it includes up to one drain interval of waiting. \"exact\": after \
         the run, every trace written during it has the row the on-the-fly aggregation \
         gives.\n\n",
    );
    out.push_str(
        "| scale | rate (achieved) | probes | lag p50 | lag p99 | lag max | drains | drain p50 / max | traces per drain | exact |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for s in &r.scales {
        for l in &s.lag {
            out.push_str(&format!(
                "| {} | {} ({:.0}) | {}{} | {} | {} | {} | {} | {} / {} | {:.0} | {} |\n",
                s.scale,
                l.rate,
                l.achieved_rate,
                l.probes,
                if l.lost > 0 {
                    format!(" ({} lost)", l.lost)
                } else {
                    String::new()
                },
                fmt_secs(l.p50),
                fmt_secs(l.p99),
                fmt_secs(l.max),
                l.drains,
                fmt_secs(l.drain_p50_secs),
                fmt_secs(l.drain_max_secs),
                l.traces_per_drain,
                if l.exact { "yes" } else { "NO" }
            ));
        }
    }

    let overheads: Vec<&ScaleResult> = r
        .scales
        .iter()
        .filter(|s| s.capture_overhead.is_some())
        .collect();
    if !overheads.is_empty() {
        out.push_str("\n### Capture on a bulk load\n\n");
        out.push_str(
            "The same scale point bulk-loaded by `crate::load::bulk` (two writers, a day at a \
             time: binary COPY into a stage table, indexes built, attached as the partition) \
             into fresh databases, alternately in view mode (capture off) and in incremental \
             mode (capture on: each attached day logs one entry per trace in one statement, \
             and gets the statement-level triggers that catch later writes); medians of the \
             runs, all runs in the JSON. Single loads vary by several percent.\n\n\
             | scale | spans | capture off | capture on | overhead | log entries | draining them |\n\
             |---|---|---|---|---|---|---|\n",
        );
        for s in overheads {
            if let Some(o) = &s.capture_overhead {
                out.push_str(&format!(
                    "| {} | {} | {:.0} spans/s | {:.0} spans/s | {:+.1}% | {} | {} |\n",
                    s.scale,
                    fmt_count(o.spans),
                    o.off_spans_per_sec,
                    o.on_spans_per_sec,
                    (o.off_spans_per_sec / o.on_spans_per_sec - 1.0) * 100.0,
                    o.log_entries,
                    fmt_secs(o.backlog_drain_secs)
                ));
            }
        }
    }

    out.push_str("\n### Targets\n\n");
    let drain_l = r
        .scales
        .iter()
        .find(|s| s.scale == "L")
        .and_then(|s| s.cycles.iter().find(|c| c.new_spans == DRAIN_TARGET_SPANS))
        .map(|c| median(&c.drain_secs));
    out.push_str(&format!(
        "- Drain covering 2 minutes of 1k spans/s at L under {}: {}\n",
        fmt_secs(DRAIN_TARGET_SECS),
        verdict(drain_l, DRAIN_TARGET_SECS)
    ));
    let lag_10k = r.scales.iter().rev().find_map(|s| {
        s.lag
            .iter()
            .find(|l| l.rate == LAG_TARGET_RATE)
            .map(|l| (s, l))
    });
    out.push_str(&format!(
        "- Lag p99 under {} at 10k spans/s: {}\n",
        fmt_secs(LAG_TARGET_SECS),
        match lag_10k {
            Some((s, l)) => format!("{} (at {})", verdict(Some(l.p99), LAG_TARGET_SECS), s.scale),
            None => "not measured".into(),
        }
    ));
    out
}

fn verdict(measured: Option<f64>, target: f64) -> String {
    match measured {
        Some(m) if m.is_finite() => format!(
            "{} -- {}",
            fmt_secs(m),
            if m < target { "met" } else { "MISSED" }
        ),
        _ => "not measured".into(),
    }
}

pub fn print_scale(s: &ScaleResult) {
    println!(
        "scale {}: full refresh {}, backfill {}",
        s.scale,
        fmt_secs(median(&s.full_refresh_secs)),
        fmt_secs(s.backfill_secs)
    );
    for c in &s.cycles {
        println!(
            "  drain after {} new spans: {} ({} traces)",
            c.new_spans,
            fmt_secs(median(&c.drain_secs)),
            c.traces
        );
    }
}

pub fn print_lag(l: &LagResult) {
    println!(
        "ingest {} spans/s (achieved {:.0}): {} probes, lag p50 {} p99 {} max {}; {} drains, p50 {} max {}; exact: {}",
        l.rate,
        l.achieved_rate,
        l.probes,
        fmt_secs(l.p50),
        fmt_secs(l.p99),
        fmt_secs(l.max),
        l.drains,
        fmt_secs(l.drain_p50_secs),
        fmt_secs(l.drain_max_secs),
        l.exact
    );
}
