//! A TCP listener whose connections come out as TLS streams, handshake done.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::config::{Alpn, TlsConfig};

pub type TlsStream = tokio_rustls::server::TlsStream<TcpStream>;

/// How long a client has to finish its handshake before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at once; past this, new connections wait in the kernel's
/// backlog, so slow or idle clients cost a bounded number of tasks and buffers.
pub const MAX_PENDING_HANDSHAKES: usize = 512;

type Handshake = (io::Result<TlsStream>, SocketAddr);

/// Accepts TCP connections and runs each handshake in its own task, so a client that
/// stalls or fails its handshake never holds up the next one. Dropping the listener
/// aborts the handshakes in progress.
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    handshakes: JoinSet<Handshake>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: &TlsConfig, alpn: Alpn) -> Self {
        TlsListener {
            tcp,
            acceptor: config.acceptor(alpn),
            handshake_timeout: HANDSHAKE_TIMEOUT,
            handshakes: JoinSet::new(),
        }
    }

    /// Replaces [`HANDSHAKE_TIMEOUT`] (tests use a short one).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// The next connection whose handshake succeeded. Failed and timed-out handshakes
    /// are logged at debug level (scanners and plain-text clients are common) and
    /// skipped. Cancel-safe: a connection accepted but not yet returned stays queued.
    pub async fn next_connection(&mut self) -> (TlsStream, SocketAddr) {
        loop {
            let room = self.handshakes.len() < MAX_PENDING_HANDSHAKES;
            tokio::select! {
                accepted = self.tcp.accept(), if room => match accepted {
                    Ok((tcp, peer)) => self.start_handshake(tcp, peer),
                    Err(e) => accept_failed(e).await,
                },
                Some(done) = self.handshakes.join_next() => match done {
                    Ok((Ok(stream), peer)) => return (stream, peer),
                    Ok((Err(e), peer)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    }
                    Err(e) => tracing::error!(error = %e, "TLS handshake task failed"),
                },
            }
        }
    }

    fn start_handshake(&mut self, tcp: TcpStream, peer: SocketAddr) {
        // Small gRPC and HTTP messages should not wait for Nagle.
        let _ = tcp.set_nodelay(true);
        let acceptor = self.acceptor.clone();
        let timeout = self.handshake_timeout;
        self.handshakes.spawn(async move {
            let result = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                Ok(r) => r,
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no TLS handshake within {timeout:?}"),
                )),
            };
            (result, peer)
        });
    }

    /// The connections as a stream, for tonic's `serve_with_incoming*`.
    pub fn into_incoming(
        self,
    ) -> impl futures_util::Stream<Item = io::Result<TlsStream>> + Send + 'static {
        futures_util::stream::unfold(self, |mut listener| async move {
            let (stream, _) = listener.next_connection().await;
            Some((Ok(stream), listener))
        })
    }
}

/// Out of file descriptors and the like: wait instead of spinning, as axum does for
/// plain TCP.
async fn accept_failed(e: io::Error) {
    tracing::error!(error = %e, "cannot accept a connection");
    tokio::time::sleep(Duration::from_millis(500)).await;
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream;
    type Addr = SocketAddr;

    fn accept(&mut self) -> impl std::future::Future<Output = (Self::Io, Self::Addr)> + Send {
        self.next_connection()
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
