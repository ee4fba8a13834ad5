//! The `srql` command line: the global flags and one subcommand. It names every
//! subcommand's arguments, so it sits above them: nothing it imports imports it back.

use clap::{Parser, Subcommand};

use crate::args::{
    BenchOtlpArgs, DbArgs, DemoArgs, GenerateArgs, QueryArgs, ServeArgs, SummaryArgs,
};
use srql_bench::distributed::BenchDistributedArgs;
use srql_bench::incremental::BenchIncrementalArgs;
use srql_bench::sealing::BenchSealingArgs;
use srql_bench::soak::BenchSoakArgs;
use srql_bench::summaries::BenchArgs;
use srql_bench::ui::BenchUiArgs;

#[derive(Debug, Parser)]
#[command(
    name = "srql",
    version,
    about = "Trace summaries over OpenTelemetry spans in PostgreSQL, queried with SRQL"
)]
pub struct Cli {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub summaries: SummaryArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (and refresh summaries where pg_cron does not).
    Serve(ServeArgs),
    /// Create or update the schema, the summaries (view or table) and their upkeep.
    Migrate,
    /// Load the synthetic workload (docs/workload.md), or keep inserting with --rate.
    Generate(GenerateArgs),
    /// Refresh the summaries now.
    Refresh {
        /// A plain (blocking) refresh instead of CONCURRENTLY.
        #[arg(long)]
        full: bool,
    },
    /// Run one SRQL query and print the rows.
    Query(QueryArgs),
    /// Embedded database, ~1M generated spans, then serve: the quickest look.
    Demo(DemoArgs),
    /// OTLP ingest throughput: the workload over OTLP/gRPC (512-span requests, several
    /// clients) into a scratch database.
    BenchOtlp(BenchOtlpArgs),
    /// Measure what the summaries buy and cost at scale points S, M and L.
    Bench(BenchArgs),
    /// Incremental maintenance: drain cost against new and total spans beside a full
    /// refresh, freshness lag under sustained ingest, trigger overhead on bulk loads.
    BenchIncremental(BenchIncrementalArgs),
    /// The service under a steady mixed load: concurrent query clients over the traces
    /// tab's requests while OTLP ingest runs at a fixed rate; errors and lost spans.
    BenchSoak(BenchSoakArgs),
    /// The traces tab in headless Chromium: navigation to the first rows painted, and a
    /// 1,000-span trace view painted.
    BenchUi(BenchUiArgs),
    /// Sealing: spans storage per million spans, heap beside every day but the newest
    /// two sealed into columnar storage; time to seal; trace lookups by id.
    BenchSealing(BenchSealingArgs),
    /// Distributed mode beside one PostgreSQL, in one run: starts a Citus coordinator and
    /// workers on this machine (removed at the end) and measures OTLP ingest, bulk load,
    /// drains, first pages and freshness on both (docs/scale-out.md).
    BenchDistributed(BenchDistributedArgs),
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command};

    fn service_config(args: &[&str]) -> Result<server::ServiceConfig, String> {
        let cli =
            Cli::try_parse_from([&["srql", "serve"], args].concat()).map_err(|e| e.to_string())?;
        let Command::Serve(serve) = cli.command else {
            panic!("serve")
        };
        let mut config = server::ServiceConfig::default();
        serve.limits.apply(&mut config)?;
        Ok(config)
    }

    #[test]
    fn query_limits_reach_the_service_config() {
        let c = service_config(&[]).unwrap();
        assert_eq!(c.query_timeout, std::time::Duration::from_secs(30));
        assert!(!c.allow_source_override);
        let c = service_config(&[
            "--query-timeout",
            "1500ms",
            "--on-the-fly-slots",
            "3",
            "--allow-source-override",
        ])
        .unwrap();
        assert_eq!(c.query_timeout, std::time::Duration::from_millis(1500));
        assert_eq!(c.on_the_fly_slots, 3);
        assert!(c.allow_source_override);
        let err = service_config(&["--query-timeout", "0s"]).unwrap_err();
        assert!(err.contains("--query-timeout"), "{err}");
        let err = service_config(&["--query-connections", "2"]).unwrap_err();
        assert!(err.contains("--query-connections"), "{err}");
    }
}
