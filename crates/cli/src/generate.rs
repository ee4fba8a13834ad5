//! `srql generate`: the synthetic workload, with a progress bar, by COPY or over OTLP;
//! and `srql bench-otlp`.

use chrono::{Duration, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;
use workload::WorkloadConfig;

use crate::args::{BenchOtlpArgs, DbArgs, GenerateArgs, SummaryArgs};
use crate::database;

pub async fn generate(
    db: &DbArgs,
    summaries: &SummaryArgs,
    args: &GenerateArgs,
) -> Result<(), String> {
    if let Some(endpoint) = &args.via_otlp {
        // The receiver at the endpoint owns the database: nothing to open here.
        let report = via_otlp(endpoint, args.spans, args.days, args.seed).await?;
        println!(
            "sent {} spans in {} OTLP requests in {:.1} s: {:.0} spans/s",
            report.spans,
            report.requests,
            report.elapsed.as_secs_f64(),
            report.spans_per_sec()
        );
        return Ok(());
    }
    let db = database::open(db).await?;
    db.migrate(summaries).await?;
    if args.spans > 0 {
        let report = srql_bench::load::with_progress(
            &db.writer_url,
            args.spans,
            args.days,
            args.seed,
            args.writers,
        )
        .await?;
        println!(
            "loaded {} spans ({} traces) in {:.1} s: {:.0} spans/s",
            report.spans,
            report.traces,
            report.elapsed.as_secs_f64(),
            report.spans_per_sec()
        );
        // Otherwise what was just loaded is missing from the summaries until the next
        // scheduled refresh, and a query right after lists none of it.
        refresh(&db.writer_url).await?;
    }
    if let Some(rate) = args.rate {
        follow(&db.writer_url, args.seed, rate).await?;
        refresh(&db.writer_url).await?;
    }
    Ok(())
}

/// One refresh (view mode), or drains until the log is empty (incremental mode), through
/// the shared procedure.
async fn refresh(url: &str) -> Result<(), String> {
    use store::summaries::RunOutcome;
    let done =
        crate::refresh::caught_up(url, store::summaries::RefreshMethod::Concurrently).await?;
    let run = done.last;
    match run.outcome {
        RunOutcome::Ok => {
            println!("summaries refreshed: {} traces", done.rows);
            Ok(())
        }
        // Another refresh (pg_cron, a running service) holds the lock and covers the load.
        RunOutcome::Skipped => {
            println!("summaries: a refresh already running covers the load");
            Ok(())
        }
        other => Err(format!(
            "refreshing the summaries after the load: {other}{}",
            run.error.map(|e| format!(" ({e})")).unwrap_or_default()
        )),
    }
}

/// Sends the workload to an OTLP/gRPC endpoint in requests of 512 spans; returns once
/// every request is acknowledged (stored).
pub async fn via_otlp(
    endpoint: &str,
    spans: u64,
    days: i64,
    seed: u64,
) -> Result<srql_bench::otlp_client::SendReport, String> {
    let end = Utc::now();
    let config = WorkloadConfig::for_spans(seed, spans, end - Duration::days(days), end);
    let bar = ProgressBar::new(spans);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} sending spans over OTLP [{bar:40}] {human_pos}/{human_len} ({per_sec}, eta {eta})",
        )
        .map_err(|e| e.to_string())?
        .progress_chars("=> "),
    );
    let b = bar.clone();
    let report =
        srql_bench::otlp_client::send_workload(endpoint, config, 4, move |n| b.set_position(n))
            .await
            .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    Ok(report)
}

/// `srql bench-otlp`: ingest throughput into a scratch database beside the service's.
pub async fn bench_otlp(db: &DbArgs, args: &BenchOtlpArgs) -> Result<(), String> {
    let db = database::open(db).await?;
    println!(
        "sending {} spans over OTLP/gRPC in requests of {} spans, {} clients, {} writers...",
        args.spans,
        srql_bench::otlp_client::BATCH_SPANS,
        args.clients,
        args.writers
    );
    let report = srql_bench::otlp_ingest::run(
        &db.url,
        &srql_bench::otlp_ingest::BenchOptions {
            spans: args.spans,
            clients: args.clients,
            writers: args.writers,
            seed: args.seed,
        },
    )
    .await?;
    println!(
        "{} spans in {} requests stored in {:.2} s: {:.0} spans/s ({} COPY statements)",
        report.spans,
        report.requests,
        report.elapsed.as_secs_f64(),
        report.spans_per_sec(),
        report.stats.batches
    );
    Ok(())
}

async fn follow(url: &str, seed: u64, rate: u64) -> Result<(), String> {
    let (tx, rx) = watch::channel(false);
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} inserting {human_pos} spans ({per_sec}); Ctrl-C stops",
        )
        .map_err(|e| e.to_string())?,
    );
    let b = bar.clone();
    let url = url.to_string();
    let task = tokio::spawn(async move {
        srql_bench::load::follow(&url, seed, rate, 1.0, rx, move |n| b.set_position(n)).await
    });
    database::shutdown_signal().await;
    let _ = tx.send(true);
    let written = task
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    println!("inserted {written} spans");
    Ok(())
}
