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
    let db = database::open(db).await?;
    db.migrate(summaries).await?;
    serve_on(&db, args, None).await
}

/// Serves until a signal; `banner` is printed once listening, with `{addr}` replaced by
/// the API's address and `{otlp}` by the receivers'.
pub async fn serve_on(
    db: &Database,
    args: &ServeArgs,
    banner: Option<String>,
) -> Result<(), String> {
    let running = start(&db.url, args).await?;
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

pub async fn start(url: &str, args: &ServeArgs) -> Result<Running, String> {
    let pool = store::db::pool(url, 16).map_err(|e| e.to_string())?;
    let config = ServiceConfig {
        api_key: args.api_key.clone().filter(|k| !k.is_empty()),
        default_limit: args.default_limit,
        max_limit: args.max_limit,
        ..ServiceConfig::default()
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let otlp = start_otlp(url, &args.otlp, stop_rx.clone()).await?;
    let mut state = AppState::new(pool, config);
    if let Some(r) = &otlp {
        let ingest = r.ingest().clone();
        state = state.with_ingest(std::sync::Arc::new(move || ingest.stats()));
    }
    let scheduler = tokio::spawn(server::scheduler::run(
        url.to_string(),
        stop_rx.clone(),
        Duration::from_secs(600),
    ));
    tracing::info!(%addr, "serving SRQL");
    let http = tokio::spawn(server::run(listener, state, stop_rx));
    Ok(Running {
        addr,
        otlp,
        stop_tx,
        http,
        scheduler,
    })
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
    stop: watch::Receiver<bool>,
) -> Result<Option<otlp::Receivers>, String> {
    let options = args.options();
    if options.grpc_listen.is_none() && options.http_listen.is_none() {
        return Ok(None);
    }
    let pool = store::db::pool(url, options.ingest.writers + 1).map_err(|e| e.to_string())?;
    otlp::start(pool, options, stop)
        .await
        .map(Some)
        .map_err(|e| e.to_string())
}
