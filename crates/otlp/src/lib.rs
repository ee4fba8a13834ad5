//! OTLP trace ingest: OTLP/gRPC and OTLP/HTTP receivers in front of one write path that
//! batches concurrent requests into binary COPY.
//!
//! ```text
//! gRPC Export ─┐                        ┌─ writer: COPY (one transaction) ─┐
//!              ├─ map (convert) ─ queue ┤                                  ├─ answer each request
//! HTTP POST  ──┘   reject bad spans     └─ writer: COPY ...               ─┘
//! ```
//!
//! A request is answered after its spans are committed; a full queue is answered at once
//! with the protocol's "retry later" (see `pipeline`).

pub mod admission;
pub mod auth;
pub mod convert;
mod failure_log;
pub mod grpc;
mod grpc_admission;
mod grpc_status;
pub mod http;
pub mod json;
pub mod pipeline;
pub mod prescan;
pub mod rpc_status;

use std::net::SocketAddr;

use deadpool_postgres::Pool;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use pipeline::{start as start_pipeline, Ingest, IngestConfig, IngestError, IngestStats};

/// Largest request accepted, after decompression, on either protocol.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Options {
    /// Where OTLP/gRPC listens; `None` turns it off.
    pub grpc_listen: Option<String>,
    /// Where OTLP/HTTP listens; `None` turns it off.
    pub http_listen: Option<String>,
    pub ingest: IngestConfig,
    pub max_request_bytes: usize,
    /// When set, both receivers require `authorization: Bearer <token>` (see `auth`).
    pub token: Option<auth::Token>,
    /// When set, both receivers speak only TLS.
    pub tls: Option<tls::TlsConfig>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            grpc_listen: Some("127.0.0.1:4317".into()),
            http_listen: Some("127.0.0.1:4318".into()),
            ingest: IngestConfig::default(),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            token: None,
            tls: None,
        }
    }
}

/// A listen flag's value: an address, or `off` (also `none`, `disabled`, empty) for
/// "do not listen".
pub fn listen_address(value: &str) -> Option<String> {
    let v = value.trim();
    if v.is_empty()
        || ["off", "none", "disabled"]
            .iter()
            .any(|o| v.eq_ignore_ascii_case(o))
    {
        None
    } else {
        Some(v.to_string())
    }
}

/// Who may send spans and over what: the same for both receivers.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub token: Option<auth::Token>,
    pub tls: Option<tls::TlsConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("cannot listen for OTLP/{protocol} on {addr}: {source}")]
    Bind {
        protocol: &'static str,
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// Running receivers. [`Receivers::stopped`] waits for the shutdown to complete.
pub struct Receivers {
    pub grpc_addr: Option<SocketAddr>,
    pub http_addr: Option<SocketAddr>,
    ingest: Ingest,
    servers: Vec<JoinHandle<()>>,
    writers: pipeline::Writers,
}

/// Binds the enabled receivers and starts them with the writers on `pool`. They stop
/// taking requests when `shutdown` turns true; [`Receivers::stopped`] then resolves once
/// in-flight requests are answered and the queue is written.
pub async fn start(
    pool: Pool,
    options: Options,
    shutdown: watch::Receiver<bool>,
) -> Result<Receivers, OtlpError> {
    let bind = |protocol: &'static str, addr: String| async move {
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| OtlpError::Bind {
                protocol,
                addr: addr.clone(),
                source,
            })?;
        let local = listener.local_addr().map_err(|source| OtlpError::Bind {
            protocol,
            addr,
            source,
        })?;
        Ok::<_, OtlpError>((listener, local))
    };
    // Bind both before starting anything, so a taken port fails the start cleanly.
    let grpc = match options.grpc_listen {
        Some(a) => Some(bind("gRPC", a).await?),
        None => None,
    };
    let http = match options.http_listen {
        Some(a) => Some(bind("HTTP", a).await?),
        None => None,
    };
    let (ingest, writers) = pipeline::start(pool, options.ingest);
    let max = options.max_request_bytes;
    let access = Access {
        token: options.token,
        tls: options.tls,
    };
    let mut servers = Vec::new();
    let (mut grpc_addr, mut http_addr) = (None, None);
    if let Some((listener, addr)) = grpc {
        grpc_addr = Some(addr);
        tracing::info!(%addr, tls = access.tls.is_some(), auth = access.token.is_some(), "OTLP/gRPC receiver listening");
        let (ingest, stop) = (ingest.clone(), shutdown.clone());
        let access = access.clone();
        servers.push(tokio::spawn(async move {
            if let Err(e) = grpc::serve(listener, ingest, max, access, stopped(stop)).await {
                tracing::error!(error = %e, "OTLP/gRPC receiver failed");
            }
        }));
    }
    if let Some((listener, addr)) = http {
        http_addr = Some(addr);
        tracing::info!(%addr, tls = access.tls.is_some(), auth = access.token.is_some(), "OTLP/HTTP receiver listening");
        let (ingest, stop) = (ingest.clone(), shutdown.clone());
        let access = access.clone();
        servers.push(tokio::spawn(async move {
            if let Err(e) = http::serve(listener, ingest, max, access, stopped(stop)).await {
                tracing::error!(error = %e, "OTLP/HTTP receiver failed");
            }
        }));
    }
    Ok(Receivers {
        grpc_addr,
        http_addr,
        ingest,
        servers,
        writers,
    })
}

impl Receivers {
    /// The shared write path (for its counters, or to submit directly).
    pub fn ingest(&self) -> &Ingest {
        &self.ingest
    }

    /// Waits until the receivers have stopped (after the shutdown signal), every
    /// accepted request is answered and the queue is empty.
    pub async fn stopped(self) {
        for s in self.servers {
            if let Err(e) = s.await {
                tracing::error!(error = %e, "OTLP receiver task failed");
            }
        }
        self.writers.drained().await;
        tracing::info!("OTLP receivers stopped; queue drained");
    }
}

/// Resolves when `rx` turns true (or its sender is gone).
async fn stopped(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::listen_address;

    #[test]
    fn off_and_its_spellings_disable_a_receiver() {
        for v in ["off", "OFF", " none ", "disabled", ""] {
            assert_eq!(listen_address(v), None, "{v:?}");
        }
        assert_eq!(
            listen_address(" 0.0.0.0:4317 ").as_deref(),
            Some("0.0.0.0:4317")
        );
    }
}
