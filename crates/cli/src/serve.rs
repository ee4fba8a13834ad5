//! `srql serve`: the HTTP API plus the summary scheduler, until Ctrl-C.

use std::time::Duration;

use server::{AppState, ServiceConfig};
use tokio::sync::watch;

use crate::args::{DbArgs, ServeArgs, SummaryArgs};
use crate::database::{self, Database};

pub async fn serve(db: &DbArgs, summaries: &SummaryArgs, args: &ServeArgs) -> Result<(), String> {
    let db = database::open(db).await?;
    db.migrate(summaries).await?;
    serve_on(&db, args, None).await
}

/// Serves until a signal; `banner` is printed once listening.
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
    let state = AppState::new(pool, config);
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let scheduler = tokio::spawn(server::scheduler::run(
        db.url.clone(),
        stop_rx.clone(),
        Duration::from_secs(600),
    ));
    tracing::info!(%addr, "serving SRQL");
    if let Some(b) = banner {
        println!("{}", b.replace("{addr}", &addr.to_string()));
    }
    let http = tokio::spawn(server::run(listener, state, stop_rx));
    database::shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = http.await;
    let _ = scheduler.await;
    Ok(())
}
