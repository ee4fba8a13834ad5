//! `srql`: trace summaries over OpenTelemetry spans in PostgreSQL, queried with SRQL.

mod args;
mod command;
mod database;
mod demo;
mod generate;
mod migrate;
mod query;
mod refresh;
mod serve;
mod table;

use clap::Parser;

use command::{Cli, Command};

/// Spans, decoded OTLP requests and COPY buffers are built on one thread and freed on
/// another, many small allocations each; glibc's malloc spent about 6% of the machine's
/// CPU on them during a bulk load (consolidating and unlinking chunks across arenas).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SRQL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Migrate => {
            let db = database::open(&cli.db).await?;
            let report = db.migrate(&cli.summaries).await?;
            println!(
                "migrations applied: {:?}; summaries ({}) {}; maintained by {}",
                report.migrations_applied,
                report.mode.as_str(),
                if report.view_built {
                    "built"
                } else {
                    "up to date"
                },
                match report.cron {
                    store::cron::CronStatus::Scheduled { schedule, .. } =>
                        format!("pg_cron ({schedule})"),
                    store::cron::CronStatus::Unavailable { reason } =>
                        format!("the service scheduler ({reason})"),
                }
            );
            Ok(())
        }
        Command::Serve(args) => serve::serve(&cli.db, &cli.summaries, &args).await,
        Command::Generate(args) => generate::generate(&cli.db, &cli.summaries, &args).await,
        Command::Refresh { full } => {
            let db = database::open(&cli.db).await?;
            let method = if full {
                store::summaries::RefreshMethod::Full
            } else {
                store::summaries::RefreshMethod::Concurrently
            };
            let done = refresh::caught_up(&db.url, method).await?;
            let run = done.last;
            println!(
                "refresh {}: {} rows in {:.3} s{}{}",
                run.outcome,
                done.rows,
                done.secs,
                if done.runs > 1 {
                    format!(" ({} drains)", done.runs)
                } else {
                    String::new()
                },
                run.error.map(|e| format!(" ({e})")).unwrap_or_default()
            );
            if run.outcome == store::summaries::RunOutcome::Ok {
                Ok(())
            } else {
                Err(format!("refresh did not succeed: {}", run.outcome))
            }
        }
        Command::Query(args) => query::query(&cli.db, &args).await,
        Command::Demo(args) => demo::demo(&cli.db, &cli.summaries, &args).await,
        Command::BenchOtlp(args) => generate::bench_otlp(&cli.db, &args).await,
        Command::Bench(args) => {
            let cfg = cli.summaries.config()?;
            let maintenance = cli.summaries.maintenance()?;
            let db = database::open(&cli.db).await?;
            srql_bench::summaries::bench(&db.bench_server(), &cfg, &maintenance, &args).await
        }
        Command::BenchIncremental(args) => {
            let db = database::open(&cli.db).await?;
            srql_bench::incremental::run(&db.bench_server(), &args).await
        }
        Command::BenchSoak(args) => {
            let cfg = cli.summaries.config()?;
            let maintenance = cli.summaries.maintenance()?;
            let db = database::open(&cli.db).await?;
            srql_bench::soak::run(
                &db.bench_server(),
                &cfg,
                &maintenance,
                &args,
                &serve::start_for_bench,
            )
            .await
        }
        Command::BenchUi(args) => {
            let cfg = cli.summaries.config()?;
            let db = database::open(&cli.db).await?;
            let maintenance = cli.summaries.maintenance()?;
            srql_bench::ui::run(
                &db.bench_server(),
                &cfg,
                &maintenance,
                &args,
                &serve::start_for_bench,
            )
            .await
        }
        Command::BenchSealing(args) => {
            let cfg = cli.summaries.config()?;
            let maintenance = cli.summaries.maintenance()?;
            let db = database::open(&cli.db).await?;
            srql_bench::sealing::run(&db.bench_server(), &cfg, &maintenance, &args).await
        }
        Command::BenchDistributed(args) => {
            let db = database::open(&cli.db).await?;
            srql_bench::distributed::run(&db.bench_server(), &args).await
        }
    }
}
