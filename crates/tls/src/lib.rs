//! TLS for every listener of the service (the query API, OTLP/gRPC, OTLP/HTTP), from one
//! certificate and key: [`TlsConfig`] loads the PEM files once, [`TlsListener`] turns a
//! `TcpListener` into one that yields TLS streams, for `axum::serve` (it implements
//! axum's `Listener`) and for tonic ([`TlsListener::into_incoming`]).
//!
//! rustls with the `ring` provider only: no OpenSSL, and no aws-lc-rs to build.

mod config;
mod listener;
pub mod testing;

pub use config::{Alpn, TlsConfig, TlsError};
pub use listener::{TlsListener, TlsStream, HANDSHAKE_TIMEOUT, MAX_PENDING_HANDSHAKES};
