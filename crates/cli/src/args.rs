//! Command-line flag groups shared by several subcommands; each flag has an environment
//! equivalent, and flags win. Imports nothing from the rest of the binary, so the
//! subcommands that use these groups never import the parser that lists them.

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// PostgreSQL to use. Absent: a private embedded cluster is started.
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// How `srql serve` runs SRQL queries: a login in `srql_reader` (see the README,
    /// "Least privilege"). Absent: DATABASE_URL (with a warning).
    #[arg(long, env = "SRQL_READER_DATABASE_URL", global = true)]
    pub reader_database_url: Option<String>,
    /// How `srql serve` ingests and maintains: a login in `srql_writer`. Absent:
    /// DATABASE_URL (with a warning).
    #[arg(long, env = "SRQL_WRITER_DATABASE_URL", global = true)]
    pub writer_database_url: Option<String>,
    /// Data directory of the embedded cluster.
    #[arg(long, env = "SRQL_DATA_DIR", global = true)]
    pub data_dir: Option<std::path::PathBuf>,
    /// Do not use pg_cron even where it is installed (the service scheduler refreshes).
    #[arg(long, env = "SRQL_NO_PG_CRON", global = true)]
    pub no_pg_cron: bool,
}

#[derive(Debug, Clone, Args)]
pub struct SummaryArgs {
    /// How far back the summaries reach (e.g. 7d).
    #[arg(long, env = "SRQL_SUMMARY_WINDOW", default_value = "7d", global = true)]
    pub summary_window: String,
    /// How often the summaries are refreshed (e.g. 2m).
    #[arg(
        long,
        env = "SRQL_REFRESH_INTERVAL",
        default_value = "2m",
        global = true
    )]
    pub refresh_interval: String,
    /// How long spans are kept; whole days past it are dropped.
    #[arg(long, env = "SRQL_RETENTION", default_value = "7d", global = true)]
    pub retention: String,
    /// How the summaries are maintained: `incremental` (a table; the service drains the
    /// traces touched since the last drain every --drain-interval) or `materialized_view`
    /// (refreshed as a whole every --refresh-interval, as ServiceRadar has it). Unset: as
    /// the database is; one without summaries gets `incremental`. Switching backfills.
    #[arg(
        long,
        env = "SRQL_SUMMARY_MODE",
        value_parser = ["materialized_view", "incremental"],
        global = true
    )]
    pub summary_mode: Option<String>,
    /// Incremental mode: how often the service drains the log (e.g. 1s, 500ms).
    #[arg(long, env = "SRQL_DRAIN_INTERVAL", default_value = "1s", global = true)]
    pub drain_interval: String,
    /// Run distributed: `citus` shards spans and summaries by trace_id over the workers
    /// of a Citus coordinator (needs --summary-mode incremental; see docs/scale-out.md).
    /// A coordinator with workers is found without it.
    #[arg(long, env = "SRQL_DISTRIBUTED", value_parser = ["citus"], global = true)]
    pub distributed: Option<String>,
}

impl SummaryArgs {
    pub fn config(&self) -> Result<store::summaries::SummaryConfig, String> {
        use store::setup::parse_duration;
        Ok(store::summaries::SummaryConfig {
            window: parse_duration(&self.summary_window)
                .map_err(|e| format!("--summary-window: {e}"))?,
            refresh_interval: parse_duration(&self.refresh_interval)
                .map_err(|e| format!("--refresh-interval: {e}"))?,
            retention: parse_duration(&self.retention).map_err(|e| format!("--retention: {e}"))?,
        })
    }

    pub fn distribution(&self) -> Result<Option<store::distributed::Distribution>, String> {
        self.distributed
            .as_deref()
            .map(|d| d.parse().map_err(|e| format!("--distributed: {e}")))
            .transpose()
    }

    /// `--summary-mode`, if given.
    pub fn summary_mode(&self) -> Result<Option<store::summaries::SummaryMode>, String> {
        self.summary_mode
            .as_deref()
            .map(|m| m.parse().map_err(|e| format!("--summary-mode: {e}")))
            .transpose()
    }

    /// The maintenance of a database made new, as each benchmark makes its own:
    /// `--summary-mode`, else the mode a new database gets.
    pub fn maintenance(&self) -> Result<store::summaries::Maintenance, String> {
        let mode = self
            .summary_mode()?
            .unwrap_or(store::settings::NEW_DATABASE_MODE);
        self.maintenance_in(mode)
    }

    /// The maintenance of the database at `url`: `--summary-mode`, else the mode it has.
    pub async fn maintenance_of(&self, url: &str) -> Result<store::summaries::Maintenance, String> {
        let mode = match self.summary_mode()? {
            Some(mode) => mode,
            None => store::setup::mode_as_it_is(url)
                .await
                .map_err(|e| e.to_string())?,
        };
        self.maintenance_in(mode)
    }

    fn maintenance_in(
        &self,
        mode: store::summaries::SummaryMode,
    ) -> Result<store::summaries::Maintenance, String> {
        Ok(store::summaries::Maintenance {
            mode,
            drain_interval: store::setup::parse_duration(&self.drain_interval)
                .map_err(|e| format!("--drain-interval: {e}"))?,
        })
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[arg(long, env = "SRQL_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    #[arg(long, env = "SRQL_API_KEY")]
    pub api_key: Option<String>,
    #[arg(long, env = "SRQL_DEFAULT_LIMIT", default_value_t = 100)]
    pub default_limit: u32,
    #[arg(long, env = "SRQL_MAX_LIMIT", default_value_t = 500)]
    pub max_limit: u32,
    /// The largest page of one trace's spans (`in:traces trace_id:X`), if above
    /// `--max-limit`: a trace view fetches a trace of this many spans in one request.
    #[arg(long, env = "SRQL_MAX_TRACE_LIMIT", default_value_t = 5_000)]
    pub max_trace_limit: u32,
    #[command(flatten)]
    pub limits: QueryLimitArgs,
    #[command(flatten)]
    pub otlp: OtlpArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Day partitions that ended this long ago are rewritten as columnar storage (needs
    /// the citus_columnar extension; e.g. 2d, 36h), or `off`.
    #[arg(long, env = "SRQL_SEAL_AFTER", default_value = store::sealing::DEFAULT_SEAL_AFTER_TEXT)]
    pub seal_after: String,
}

impl ServeArgs {
    /// `--seal-after` parsed; `None` when sealing is turned off.
    pub fn seal_after(&self) -> Result<Option<chrono::Duration>, String> {
        if self.seal_after.trim() == "off" {
            return Ok(None);
        }
        store::setup::parse_duration(&self.seal_after)
            .map(Some)
            .map_err(|e| format!("--seal-after: {e} (or `off`)"))
    }
}

/// TLS for every listener (the query API and both OTLP receivers): one certificate and
/// key, both or neither.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// PEM certificate chain (leaf first); with --tls-key, all listeners speak only TLS.
    #[arg(long, env = "SRQL_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, env = "SRQL_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

impl TlsArgs {
    /// The loaded certificate and key, or `None` when TLS is off; a bad file is an error
    /// naming it.
    pub fn load(&self) -> Result<Option<tls::TlsConfig>, String> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => tls::TlsConfig::from_pem_files(cert, key)
                .map(Some)
                .map_err(|e| e.to_string()),
            (None, None) => Ok(None),
            _ => Err("--tls-cert and --tls-key (SRQL_TLS_CERT, SRQL_TLS_KEY) go together".into()),
        }
    }
}

/// What one client can make the query API spend.
#[derive(Debug, Clone, Args)]
pub struct QueryLimitArgs {
    /// PostgreSQL statement timeout for every query (e.g. 500ms, 30s, 2m); a query past it
    /// is stopped and answered 504.
    #[arg(long, env = "SRQL_QUERY_TIMEOUT", default_value = "30s")]
    pub query_timeout: String,
    /// Connections the query API uses at most (summary reads, work over spans, probes).
    #[arg(long, env = "SRQL_QUERY_CONNECTIONS", default_value_t = 16)]
    pub query_connections: usize,
    /// Queries over spans (on-the-fly aggregations, span reads) running at once; more
    /// wait briefly, then get 503 + Retry-After. Summary reads are not affected.
    #[arg(long, env = "SRQL_ON_THE_FLY_SLOTS", default_value_t = 2)]
    pub on_the_fly_slots: usize,
    /// Honour the request field `source` (pin `summaries` or `on_the_fly`); otherwise a
    /// request naming anything but `auto` is refused with 403.
    #[arg(long, env = "SRQL_ALLOW_SOURCE_OVERRIDE")]
    pub allow_source_override: bool,
}

impl Default for QueryLimitArgs {
    fn default() -> Self {
        Self {
            query_timeout: "30s".into(),
            query_connections: 16,
            on_the_fly_slots: 2,
            allow_source_override: false,
        }
    }
}

impl QueryLimitArgs {
    pub fn apply(&self, config: &mut server::ServiceConfig) -> Result<(), String> {
        config.query_timeout = store::setup::parse_duration(&self.query_timeout)
            .and_then(|d| d.to_std().map_err(|e| e.to_string()))
            .map_err(|e| format!("--query-timeout: {e}"))?;
        if self.query_connections < 4 {
            return Err("--query-connections: at least 4 (summaries, spans, probes)".into());
        }
        config.on_the_fly_slots = self.on_the_fly_slots.max(1);
        config.allow_source_override = self.allow_source_override;
        Ok(())
    }
}

/// Where the OTLP trace receivers listen (beside the query API); `off` turns one off.
#[derive(Debug, Clone, Args)]
pub struct OtlpArgs {
    /// OTLP/gRPC receiver (TraceService/Export), or `off`.
    #[arg(long, env = "SRQL_OTLP_GRPC_LISTEN", default_value = "127.0.0.1:4317")]
    pub otlp_grpc_listen: String,
    /// OTLP/HTTP receiver (POST /v1/traces), or `off`.
    #[arg(long, env = "SRQL_OTLP_HTTP_LISTEN", default_value = "127.0.0.1:4318")]
    pub otlp_http_listen: String,
    /// Require `authorization: Bearer <token>` on both receivers (exporters:
    /// OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20<token>).
    #[arg(long, env = "SRQL_OTLP_TOKEN", hide_env_values = true)]
    pub otlp_token: Option<String>,
    /// Spans starting further ahead than this are rejected (clock skew allowed).
    #[arg(long, env = "SRQL_OTLP_MAX_FUTURE", default_value = "1h")]
    pub otlp_max_future: String,
    /// Spans in one export request, beyond which it is refused before decoding.
    #[arg(
        long,
        env = "SRQL_OTLP_MAX_SPANS_PER_REQUEST",
        default_value_t = 100_000
    )]
    pub otlp_max_spans_per_request: usize,
    /// MiB of estimated memory for all export requests being decoded and written at once;
    /// requests wait up to 2 s for room, then are told to retry.
    #[arg(long, env = "SRQL_OTLP_DECODE_BUDGET_MIB", default_value_t = 256)]
    pub otlp_decode_budget_mib: usize,
}

impl OtlpArgs {
    /// The receivers' options; `retention` is the service's (spans older are refused).
    pub fn options(&self, retention: std::time::Duration) -> Result<otlp::Options, String> {
        let defaults = otlp::Options::default();
        let max_future = store::setup::parse_duration(&self.otlp_max_future)
            .and_then(|d| d.to_std().map_err(|e| e.to_string()))
            .map_err(|e| format!("--otlp-max-future: {e}"))?;
        Ok(otlp::Options {
            grpc_listen: otlp::listen_address(&self.otlp_grpc_listen),
            http_listen: otlp::listen_address(&self.otlp_http_listen),
            token: self.otlp_token.as_deref().and_then(otlp::auth::Token::new),
            ingest: otlp::IngestConfig {
                limits: otlp::admission::Limits {
                    max_spans_per_request: self.otlp_max_spans_per_request.max(1),
                    decode_budget_bytes: self.otlp_decode_budget_mib.max(1).saturating_mul(1 << 20),
                    retention,
                    max_future,
                    ..otlp::admission::Limits::default()
                },
                ..defaults.ingest.clone()
            },
            ..defaults
        })
    }
}

#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    /// Spans to load.
    #[arg(long, default_value_t = 1_000_000)]
    pub spans: u64,
    /// Days back from now the traces spread over.
    #[arg(long, default_value_t = 7)]
    pub days: i64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// After the load, keep inserting this many spans per second until Ctrl-C.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Parallel COPY connections.
    #[arg(long, default_value_t = 2)]
    pub writers: usize,
    /// Send the spans to this OTLP/gRPC endpoint (e.g. 127.0.0.1:4317, a running
    /// `srql serve`) in requests of 512 spans instead of writing them with COPY.
    #[arg(long, value_name = "ENDPOINT", conflicts_with = "rate")]
    pub via_otlp: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct BenchOtlpArgs {
    /// Spans to send.
    #[arg(long, default_value_t = 500_000)]
    pub spans: u64,
    /// Concurrent gRPC clients, each on its own connection.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// The receiver's COPY writers.
    #[arg(long, default_value_t = 2)]
    pub writers: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Clone, Args)]
pub struct QueryArgs {
    /// The SRQL query, e.g. "in:otel_trace_summaries time:last_1h limit:10".
    pub srql: String,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[arg(long)]
    pub limit: Option<i64>,
    #[arg(long)]
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    #[arg(long, default_value_t = 1_000_000)]
    pub spans: u64,
    #[arg(long, env = "SRQL_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Load, refresh, run a few queries and exit instead of serving.
    #[arg(long)]
    pub no_serve: bool,
    /// Load the spans through the service's own OTLP/gRPC receiver instead of COPY.
    #[arg(long)]
    pub via_otlp: bool,
    #[command(flatten)]
    pub otlp: OtlpArgs,
}
