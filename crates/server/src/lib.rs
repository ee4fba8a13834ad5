//! The running service: the HTTP API, metrics, and background summary maintenance.
//!
//! Errors map to HTTP statuses in exactly one place (`error.rs`).

mod app;
mod error;
mod lanes;
mod metrics;
pub mod scheduler;
mod state;

pub use app::app;
pub use error::ApiError;
pub use metrics::IngestProbe;
pub use state::{AppState, ServiceConfig};

use tokio::net::TcpListener;
use tokio::sync::watch;

/// Serves `state` on `listener` until `shutdown` flips to true; in-flight requests finish.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async move {
            while !*shutdown.borrow() {
                if shutdown.changed().await.is_err() {
                    break;
                }
            }
        })
        .await
}
