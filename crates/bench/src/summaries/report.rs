//! The Markdown report: a section of BENCHMARKS.md between two marker lines. The rest of
//! that file belongs to other work and is kept byte for byte.

use std::fmt::Write;

use store::summaries::SummaryMode;

use super::api::Path;
pub use super::format::{fmt_ms, fmt_secs};
use super::latency::{LatencySummary, Measurement};
use super::results::BenchResults;
use super::storage::per_million;

/// Where the generated section links to.
pub struct Links<'a> {
    pub json: &'a str,
    pub svg: &'a str,
    /// Hand-written notes on the recorded run, included verbatim.
    pub notes: Option<&'a str>,
}

fn fmt_bytes(bytes: f64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if bytes >= 1024.0 * MIB {
        format!("{:.2} GiB", bytes / (1024.0 * MIB))
    } else {
        format!("{:.1} MiB", bytes / MIB)
    }
}

fn fmt_count(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.2}M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1}k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

fn fmt_latency(m: &Measurement) -> String {
    match m {
        Measurement::Measured(l) => format!(
            "{} / {} / {} ({})",
            fmt_ms(l.p50_ms),
            fmt_ms(l.p95_ms),
            fmt_ms(l.p99_ms),
            l.runs
        ),
        Measurement::Skipped { reason } => format!("skipped: {reason}"),
    }
}

fn fmt_reads(l: &Option<LatencySummary>) -> String {
    l.as_ref().map_or_else(
        || "-".to_string(),
        |l| {
            format!(
                "{} / {} / {} ({})",
                fmt_ms(l.p50_ms),
                fmt_ms(l.p99_ms),
                fmt_ms(l.max_ms),
                l.runs
            )
        },
    )
}

/// The section between the markers (markers excluded).
pub fn render(r: &BenchResults, links: &Links) -> String {
    let mut md = String::new();
    let m = &r.machine;
    let p = &r.settings.policies;
    let incremental = r.summary_mode == SummaryMode::Incremental;
    let (title, flag, build) = if incremental {
        (
            "Trace summaries in incremental mode, the default (`srql bench`)",
            " --summary-mode incremental",
            "switches it to incremental summaries (capture on, the summary table \
             backfilled from the spans, drained), ",
        )
    } else {
        (
            "Trace summaries in materialized-view mode, as ServiceRadar has them \
             (`srql --summary-mode materialized_view bench`)",
            " --summary-mode materialized_view",
            "builds the summaries (the materialized view), ",
        )
    };
    let _ = write!(
        md,
        "## {title}\n\n\
         Rerun with one command (release build; an embedded PostgreSQL in its own data \
         directory; S, M and L in about a quarter of an hour):\n\n    \
         cargo run --release -p srql-cli -- --data-dir /tmp/srql-bench{flag} bench\n\n\
         `--scales S` is a quick look. Each scale point loads the synthetic workload \
         (docs/workload.md) into a fresh database, {build}and measures \
         through the HTTP API: real requests over loopback to the service started \
         in-process, each pinned to a path with the body's `source` field, the \
         `x-srql-source` header checked on every response. All figures: [{json}]({json}).\n\n\
         Recorded run: `srql {cmd}` on {date}, commit `{commit}`{dirty}; {cpus} CPUs \
         ({cpu}), {mem:.1} GiB memory, PostgreSQL {pg}; {total}{partial}.{others}\n\n",
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
        partial = if r.complete {
            ""
        } else {
            " (incomplete: the run stopped before its last scale point)"
        },
        others = others_line(r),
    );

    let _ = write!(
        md,
        "### Targets at L ({})\n\n| target | measured | met |\n|---|---|---|\n",
        super::mode::describe(r.summary_mode)
    );
    for t in &r.targets {
        let met = match t.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "-",
        };
        let _ = writeln!(md, "| {} | {} | {met} |", t.target, t.measured);
    }

    let _ = write!(
        md,
        "\n### First-page latency\n\n\
         Milliseconds, p50 / p95 / p99 (timed runs), from sending the request to the last \
         byte of the response. Summary path: {sw} warm-up runs per query, then {sr}. \
         On-the-fly path: {ow} untimed run(s) of the last-24-hours query per scale point \
         (every on-the-fly query reads the same spans), then per query at least {omin} \
         timed run(s) ({target} for last 24 h, the target's query), more until the timed \
         runs took {budget:.0} s, at most {omax}. Percentiles are nearest-rank: with few \
         runs, p99 is the slowest run. Page 100 follows `next_cursor` 99 times on the \
         summary path, then times page 100 on each path from that cursor (a keyset cursor \
         holds sort keys, not a path).\n\n\
         | query | scale | summaries | on the fly | speed-up (p50) |\n|---|---|---|---|---|\n",
        sw = p.summaries.warmup,
        sr = p.summaries.max_runs,
        ow = p.on_the_fly_warmup,
        target = p.on_the_fly_target_min_runs,
        omin = p.on_the_fly.min_runs,
        omax = p.on_the_fly.max_runs,
        budget = p.on_the_fly.budget_secs,
    );
    let query_names: Vec<(&str, &str)> = r
        .scales
        .first()
        .map(|s| s.queries.iter().map(|q| (q.name, q.title)).collect())
        .unwrap_or_default();
    for (name, title) in query_names {
        for s in &r.scales {
            let Some(q) = s.queries.iter().find(|q| q.name == name) else {
                continue;
            };
            let _ = writeln!(
                md,
                "| {title} | {} | {} | {} | {} |",
                s.scale,
                fmt_latency(q.path(Path::Summaries)),
                fmt_latency(q.path(Path::OnTheFly)),
                q.speedup_p50
                    .map_or_else(|| "-".into(), |x| format!("{x:.0}×"))
            );
        }
    }
    let _ = write!(
        md,
        "\n![First-page latency against scale, both paths]({})\n\n",
        links.svg
    );

    if incremental {
        drains(&mut md, r);
    } else {
        refreshes(&mut md, r);
    }
    storage(&mut md, r);
    if let Some(notes) = links.notes {
        let _ = write!(md, "\n{}\n", notes.trim_end());
    }
    md
}

fn refreshes(md: &mut String, r: &BenchResults) {
    let _ = write!(
        md,
        "### Refresh\n\n\
         Wall clock of `CALL srql_refresh_summaries(...)` on its own connection, as the \
         scheduler runs it; the plain refresh is the first population after the load (a \
         plain refresh recomputes every row either way). Reads: first-page queries on the summary path over the API \
         (so over other database connections), one every {pause} ms, cycling through the \
         queries above; milliseconds, p50 / p99 / max (reads). A plain refresh blocks \
         readers for its whole duration, so only CONCURRENTLY is measured with readers.\n\n\
         | scale | summary rows | plain refresh | CONCURRENTLY | reads, idle | reads during CONCURRENTLY |\n\
         |---|---|---|---|---|---|\n",
        pause = r
            .scales
            .iter()
            .find_map(|s| s.refresh.as_ref())
            .map_or(0, |f| f.read_pause_ms),
    );
    for s in &r.scales {
        let Some(f) = &s.refresh else {
            continue;
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            s.scale,
            fmt_count(f.rows as f64),
            fmt_secs(f.plain_secs),
            fmt_secs(f.concurrent_secs),
            fmt_reads(&f.idle_reads),
            fmt_reads(&f.reads_during_concurrent),
        );
    }
}

/// Incremental mode's counterpart of the refresh table: the switch, and drains of newly
/// arrived spans with readers.
fn drains(md: &mut String, r: &BenchResults) {
    let first = r.scales.iter().find_map(|s| s.drain.as_ref());
    let _ = write!(
        md,
        "### Switch and drains (in place of the view's refresh)\n\n\
         Switch: wall clock of the change to incremental mode after the load, as \
         `srql migrate --summary-mode incremental` makes it (capture on, the summary table \
         backfilled day by day from the spans and analyzed, swapped in), then the drain of \
         whatever the log held. Drains: {n} new spans written (new traces over the last \
         two minutes, a COPY per 100 spans, late spans last), then one drain applies them, \
         timed as `srql_refresh_runs` records it; repeated per scale point as listed. \
         Reads: first-page queries on the summary path over the API, one every {pause} ms, \
         cycling through the queries above, with no drain running and while each drain \
         runs; milliseconds, p50 / p99 / max (reads).\n\n\
         | scale | summary rows | switch (backfill) | first drain | drains: time (traces) | reads, idle | reads during drains |\n\
         |---|---|---|---|---|---|---|\n",
        n = first.map_or(0, |d| d.new_spans),
        pause = first.map_or(0, |d| d.read_pause_ms),
    );
    for s in &r.scales {
        let Some(d) = &s.drain else {
            continue;
        };
        let each: Vec<String> = d
            .drains
            .iter()
            .map(|x| format!("{} ms ({})", fmt_ms(x.secs * 1000.0), x.traces))
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} ms | {} | {} | {} |",
            s.scale,
            fmt_count(d.rows as f64),
            fmt_secs(d.switch_secs),
            fmt_ms(d.first_drain_secs * 1000.0),
            if each.is_empty() {
                "-".to_string()
            } else {
                each.join(", ")
            },
            fmt_reads(&d.idle_reads),
            fmt_reads(&d.reads_during_drains),
        );
    }
}

fn storage(md: &mut String, r: &BenchResults) {
    let relation = r.scales.first().map_or("summary relation", |s| {
        s.storage.summaries_relation.as_str()
    });
    let when = if r.summary_mode == SummaryMode::Incremental {
        "the switch"
    } else {
        "the first refresh"
    };
    let _ = write!(
        md,
        "\n### Load and storage\n\n\
         Load: `crate::load::bulk` (generation; per day binary COPY into a stage table, \
         its indexes built, attached as the partition; ANALYZE), then a \
         `VACUUM (ANALYZE)` that is not counted. Sizes after \
         {when}: spans summed over the day partitions of `otel_traces` (heap and \
         TOAST, then its four indexes); summaries are the {relation} `otel_trace_summaries` \
         and its indexes. Per million spans for spans, per million traces (summary rows) \
         for summaries.\n\n\
         | scale | spans | traces | load | spans: table + indexes | per 1M spans | summaries: table + indexes | per 1M traces |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for s in &r.scales {
        let st = &s.storage;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} spans/s ({}) | {} + {} | {} | {} + {} | {} |",
            s.scale,
            fmt_count(st.spans as f64),
            fmt_count(st.traces as f64),
            s.load.spans_per_sec,
            fmt_secs(s.load.secs),
            fmt_bytes(st.spans_table_bytes as f64),
            fmt_bytes(st.spans_index_bytes as f64),
            fmt_bytes(per_million(st.spans_bytes(), st.spans)),
            fmt_bytes(st.summaries_table_bytes as f64),
            fmt_bytes(st.summaries_index_bytes as f64),
            fmt_bytes(per_million(st.summaries_bytes(), st.traces)),
        );
    }
}

/// Who else used the machine: the figures of a shared machine need that beside them.
fn others_line(r: &BenchResults) -> String {
    let shares: Vec<String> = r
        .scales
        .iter()
        .filter_map(|s| {
            s.other_cpu_share
                .map(|x| format!("{} {:.0}%", s.scale, x * 100.0))
        })
        .collect();
    if shares.is_empty() {
        return String::new();
    }
    format!(
        " Other processes used this share of the machine's CPU time while each scale \
         point ran: {}.",
        shares.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formats() {
        assert_eq!(fmt_ms(0.4321), "0.43");
        assert_eq!(fmt_ms(43.21), "43.2");
        assert_eq!(fmt_ms(4321.0), "4321");
        assert_eq!(fmt_secs(12.34), "12.3 s");
        assert_eq!(fmt_secs(754.0), "12 min 34 s");
        assert_eq!(fmt_bytes(3.0 * 1024.0 * 1024.0 * 1024.0), "3.00 GiB");
        assert_eq!(fmt_count(1_340_000.0), "1.34M");
    }
}
