//! `srql bench-sealing`: what sealing buys and costs at a scale point. The workload is
//! loaded into a scratch database as `srql bench` loads it; then, heap beside sealed
//! (every day sealed but the newest two, as `--seal-after 1d` leaves them): spans storage
//! per million spans, the time to seal each day, and a trace's spans by id from an old
//! day. Printed as Markdown rows for BENCHMARKS.md.

use std::time::Instant;

use chrono::Duration;
use clap::Args;
use workload::Scale;

use crate::scratch::{self, Server};
use crate::summaries::storage::{self, per_million, Storage};

const DATABASE: &str = "srql_bench_sealing";

#[derive(Debug, Clone, Args)]
pub struct BenchSealingArgs {
    /// Scale point of the loaded data: S (100k spans), M (1M), L (10M).
    #[arg(long, default_value = "S", value_parser = Scale::parse)]
    pub scale: Scale,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Parallel COPY connections for the load.
    #[arg(long, default_value_t = crate::load::DEFAULT_WRITERS)]
    pub writers: usize,
    /// Trace lookups measured on each side.
    #[arg(long, default_value_t = 200)]
    pub lookups: usize,
}

pub async fn run(
    db: &Server,
    cfg: &store::summaries::SummaryConfig,
    args: &BenchSealingArgs,
) -> Result<(), String> {
    let url = scratch::recreate_database(db, DATABASE).await?;
    let measured = measure(&url, cfg, args).await;
    // Dropped whatever happened, so a rerun starts clean.
    let dropped = scratch::drop_database(db, DATABASE).await;
    measured?;
    dropped
}

async fn measure(
    url: &str,
    cfg: &store::summaries::SummaryConfig,
    args: &BenchSealingArgs,
) -> Result<(), String> {
    let err = |e: store::DbError| e.to_string();
    let point = crate::load::ScalePoint {
        spans: args.scale.spans(),
        seed: args.seed,
        writers: args.writers,
        extra: &[],
        populate: false,
    };
    crate::load::scale_point(url, cfg, &point).await?;
    let mut client = store::db::connect(url).await.map_err(err)?;
    if !store::sealing::available(&client).await.map_err(err)? {
        return Err(store::sealing::UNAVAILABLE.to_string());
    }
    let heap = storage::measure(url).await?;
    // Traces of the oldest days, which get sealed.
    let traces: Vec<String> = client
        .query(
            "SELECT trace_id FROM otel_traces WHERE timestamp < now() - interval '3 days'
             GROUP BY trace_id ORDER BY md5(trace_id) LIMIT $1",
            &[&(args.lookups as i64)],
        )
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let heap_lookup = lookups(&client, &traces).await?;

    let started = Instant::now();
    let round = store::sealing::seal_due(&mut client, Duration::days(1), cfg.retention)
        .await
        .map_err(err)?;
    let seal_secs = started.elapsed().as_secs_f64();
    if !round.postponed.is_empty() {
        return Err(format!("days not sealed: {:?}", round.postponed));
    }
    client
        .batch_execute("ANALYZE otel_traces")
        .await
        .map_err(|e| e.to_string())?;
    let sealed = storage::measure(url).await?;
    let sealed_lookup = lookups(&client, &traces).await?;
    let slowest_day = round.sealed.iter().map(|d| d.seconds).fold(0.0, f64::max);

    println!(
        "| scale | spans | days sealed | spans: heap | per 1M | spans: sealed | per 1M | vs 84 MiB/M | sealing (slowest day) | by id p50 / p99, heap | sealed |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mib = |b: f64| b / 1_048_576.0;
    let per_m = |s: &Storage| mib(per_million(s.spans_bytes(), s.spans));
    println!(
        "| {} | {} | {} | {:.0} MiB | {:.0} MiB | {:.0} MiB ({:.0} + {:.0}) | {:.0} MiB | {:.2}x | {:.1} s ({:.1} s) | {:.2} / {:.2} ms | {:.2} / {:.2} ms |",
        args.scale.name(),
        sealed.spans,
        round.sealed.len(),
        mib(heap.spans_bytes() as f64),
        per_m(&heap),
        mib(sealed.spans_bytes() as f64),
        mib(sealed.spans_table_bytes as f64),
        mib(sealed.spans_index_bytes as f64),
        per_m(&sealed),
        per_m(&sealed) / 84.0,
        seal_secs,
        slowest_day,
        heap_lookup.0,
        heap_lookup.1,
        sealed_lookup.0,
        sealed_lookup.1,
    );
    Ok(())
}

/// p50 and p99 in ms of fetching each trace's spans by id, after one untimed pass so
/// both sides are measured warm.
async fn lookups(client: &tokio_postgres::Client, traces: &[String]) -> Result<(f64, f64), String> {
    let stmt = client
        .prepare("SELECT * FROM otel_traces WHERE trace_id = $1")
        .await
        .map_err(|e| e.to_string())?;
    let mut ms = Vec::with_capacity(traces.len());
    for pass in 0..2 {
        for t in traces {
            let started = Instant::now();
            client.query(&stmt, &[t]).await.map_err(|e| e.to_string())?;
            if pass == 1 {
                ms.push(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| {
        ms.get(((ms.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    Ok((at(0.5), at(0.99)))
}
