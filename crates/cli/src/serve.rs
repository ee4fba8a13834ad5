//! `srql serve`: the HTTP API, the OTLP trace receivers and the summary scheduler,
//! until Ctrl-C.

use std::net::SocketAddr;
use std::time::Duration;

use server::{AppState, ServiceConfig};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::args::{DbArgs, OtlpArgs, ServeArgs, SummaryArgs};
use crate::database::{self, Database};

pub async fn serve(db: &DbArgs, summaries: &SummaryArgs, args: &ServeArgs) -> Result<(), String> {
    // Bad certificate files fail the start before the database is touched.
    let tls = args.tls.load()?;
    let db = database::open(db).await?;
    db.migrate(summaries).await?;
    serve_on(&db, args, tls, None).await
}

/// Serves until a signal, over TLS on every listener when `tls` is set; `banner` is
/// printed once listening, with `{addr}` replaced by the API's address and `{otlp}` by
/// the receivers'.
pub async fn serve_on(
    db: &Database,
    args: &ServeArgs,
    tls: Option<tls::TlsConfig>,
    banner: Option<String>,
) -> Result<(), String> {
    for variable in &db.fallbacks {
        tracing::warn!(
            "{variable} is not set: that part of the service uses DATABASE_URL's privileges (README, \"Least privilege\")"
        );
    }
    let running = start(&db.reader_url, &db.writer_url, args, tls).await?;
    if let Some(b) = banner {
        let receivers = running.otlp.as_ref().map_or("off".to_string(), |r| {
            let show = |a: Option<std::net::SocketAddr>, what: &str| {
                a.map_or(format!("{what} off"), |a| format!("{what} {a}"))
            };
            format!(
                "{}, {}",
                show(r.grpc_addr, "gRPC"),
                show(r.http_addr, "HTTP")
            )
        });
        println!(
            "{}",
            b.replace("{addr}", &running.addr.to_string())
                .replace("{otlp}", &receivers)
        );
    }
    database::shutdown_signal().await;
    tracing::info!("shutting down");
    running.stop().await;
    Ok(())
}

/// The service as `srql serve` runs it (query API, OTLP receivers, scheduler), started
/// in this process; `srql bench-soak` measures exactly this.
pub struct Running {
    /// Where the query API listens.
    pub addr: SocketAddr,
    pub otlp: Option<otlp::Receivers>,
    stop_tx: watch::Sender<bool>,
    http: JoinHandle<std::io::Result<()>>,
    scheduler: JoinHandle<()>,
}

pub async fn start(
    reader_url: &str,
    writer_url: &str,
    args: &ServeArgs,
    tls: Option<tls::TlsConfig>,
) -> Result<Running, String> {
    let mut config = ServiceConfig {
        api_key: args.api_key.clone().filter(|k| !k.is_empty()),
        page_limits: srql_plan::PageLimits {
            default: args.default_limit,
            max: args.max_limit,
            one_trace: args.max_trace_limit,
        },
        ..ServiceConfig::default()
    };
    args.limits.apply(&mut config)?;
    let pool =
        store::db::pool(reader_url, args.limits.query_connections).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let otlp = start_otlp(writer_url, &args.otlp, tls.clone(), stop_rx.clone()).await?;
    let mut state = AppState::new(pool, config);
    if let Some(r) = &otlp {
        let ingest = r.ingest().clone();
        state = state.with_ingest(std::sync::Arc::new(move || ingest.stats()));
    }
    let seal_after = args.seal_after()?;
    announce_sealing(&state, seal_after).await;
    let scheduler = tokio::spawn(server::scheduler::run(
        writer_url.to_string(),
        stop_rx.clone(),
        Duration::from_secs(600),
        seal_after,
    ));
    tracing::info!(%addr, tls = tls.is_some(), "serving SRQL");
    let http = match tls {
        Some(config) => tokio::spawn(server::run(
            tls::TlsListener::new(listener, &config, tls::Alpn::Http1),
            state,
            stop_rx,
        )),
        None => tokio::spawn(server::run(listener, state, stop_rx)),
    };
    Ok(Running {
        addr,
        otlp,
        stop_tx,
        http,
        scheduler,
    })
}

/// Says once at start whether days will be sealed, and why not.
async fn announce_sealing(state: &AppState, seal_after: Option<chrono::Duration>) {
    let Some(after) = seal_after else {
        tracing::info!("sealing is off (--seal-after off)");
        return;
    };
    let because = match state.pool.get().await {
        Ok(client) => store::sealing::unavailable_because(&**client).await,
        Err(e) => Err(store::DbError::from(e)),
    };
    match because {
        Ok(None) => tracing::info!(
            seal_after_hours = after.num_hours(),
            "sealing days into columnar storage"
        ),
        Ok(Some(because)) => tracing::warn!("{because}"),
        Err(e) => tracing::warn!(error = %e, "cannot tell whether sealing is available"),
    }
}

impl Running {
    /// Stops taking requests, answers those in flight and writes every accepted span.
    pub async fn stop(self) {
        let _ = self.stop_tx.send(true);
        let _ = self.http.await;
        if let Some(r) = self.otlp {
            // Accepted spans are written before we exit.
            r.stopped().await;
        }
        let _ = self.scheduler.await;
    }
}

/// The OTLP receivers with their own connections (COPY must not wait for query
/// connections, nor queries for COPY), or `None` when both are `off`.
pub async fn start_otlp(
    url: &str,
    args: &OtlpArgs,
    tls: Option<tls::TlsConfig>,
    stop: watch::Receiver<bool>,
) -> Result<Option<otlp::Receivers>, String> {
    if otlp::listen_address(&args.otlp_grpc_listen).is_none()
        && otlp::listen_address(&args.otlp_http_listen).is_none()
    {
        return Ok(None);
    }
    let pool = store::db::pool(url, otlp::IngestConfig::default().writers + 1)
        .map_err(|e| e.to_string())?;
    // The retention the service's upkeep applies, as `migrate` stored it.
    let retention = {
        let client = pool
            .get()
            .await
            .map_err(|e| store::DbError::from(e).to_string())?;
        store::summaries::stored_config(&**client)
            .await
            .map_err(|e| e.to_string())?
            .retention
    };
    let options = otlp::Options {
        tls,
        ..args.options(retention.to_std().map_err(|e| e.to_string())?)?
    };
    otlp::start(pool, options, stop)
        .await
        .map(Some)
        .map_err(|e| e.to_string())
}

/// The service `srql bench-soak` and `srql bench-ui` measure: this one, on the run's
/// database, as its superuser.
pub fn start_for_bench(
    url: String,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<srql_bench::soak::Service, String>> + Send>,
> {
    Box::pin(async move {
        let running = start(&url, &url, &soak_args()?, None).await?;
        let otlp_grpc = running
            .otlp
            .as_ref()
            .and_then(|r| r.grpc_addr)
            .ok_or("the OTLP/gRPC receiver did not start")?;
        Ok(srql_bench::soak::Service {
            addr: running.addr,
            otlp_grpc,
            stop: Box::pin(running.stop()),
        })
    })
}

/// `srql serve`'s flags (and their environment) with every listener on an ephemeral
/// loopback port, the OTLP/HTTP receiver off (ingest goes over gRPC) and no API key.
fn soak_args() -> Result<ServeArgs, String> {
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        serve: ServeArgs,
    }
    let mut flags = Flags::try_parse_from([
        "srql-serve",
        "--listen",
        "127.0.0.1:0",
        "--otlp-grpc-listen",
        "127.0.0.1:0",
        "--otlp-http-listen",
        "off",
    ])
    .map_err(|e| format!("service settings: {e}"))?;
    flags.serve.api_key = None;
    Ok(flags.serve)
}
