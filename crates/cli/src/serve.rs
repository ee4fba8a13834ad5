//! `srql serve`: the HTTP API, the OTLP trace receivers and the summary scheduler,
//! until Ctrl-C.

use std::time::Duration;

use server::{AppState, ServiceConfig};
use tokio::sync::watch;

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
    let pool = store::db::pool(&db.url, 16).map_err(|e| e.to_string())?;
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
    let otlp = start_otlp(&db.url, &args.otlp, stop_rx.clone()).await?;
    let mut state = AppState::new(pool, config);
    if let Some(r) = &otlp {
        let ingest = r.ingest().clone();
        state = state.with_ingest(std::sync::Arc::new(move || ingest.stats()));
    }
    let scheduler = tokio::spawn(server::scheduler::run(
        db.url.clone(),
        stop_rx.clone(),
        Duration::from_secs(600),
    ));
    tracing::info!(%addr, "serving SRQL");
    if let Some(b) = banner {
        let receivers = otlp.as_ref().map_or("off".to_string(), |r| {
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
            b.replace("{addr}", &addr.to_string())
                .replace("{otlp}", &receivers)
        );
    }
    let http = tokio::spawn(server::run(listener, state, stop_rx));
    database::shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = http.await;
    if let Some(r) = otlp {
        // Accepted spans are written before we exit.
        r.stopped().await;
    }
    let _ = scheduler.await;
    Ok(())
}

/// The OTLP receivers with their own connections (COPY must not wait for query
/// connections, nor queries for COPY), or `None` when both are `off`.
pub async fn start_otlp(
    url: &str,
    args: &OtlpArgs,
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
        store::summaries::stored_config(&client)
            .await
            .map_err(|e| e.to_string())?
            .retention
    };
    let options = args.options(retention.to_std().map_err(|e| e.to_string())?)?;
    otlp::start(pool, options, stop)
        .await
        .map(Some)
        .map_err(|e| e.to_string())
}
