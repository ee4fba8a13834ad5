//! The running service: the HTTP API, metrics, and background summary maintenance.
//!
//! Errors map to HTTP statuses in exactly one place (`error.rs`).

mod app;
mod error;
mod lanes;
mod metrics;
pub mod scheduler;
mod state;
mod ui;

pub use app::app;
pub use error::ApiError;
pub use metrics::IngestProbe;
pub use state::{AppState, ServiceConfig};

use tokio::sync::watch;

/// Serves `state` on `listener` until `shutdown` flips to true; in-flight requests finish.
/// Any axum listener: a `TcpListener`, or a `tls::TlsListener` for HTTPS.
pub async fn run<L>(
    listener: L,
    state: AppState,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
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
