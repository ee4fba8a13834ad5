//! The server certificate and key, read from PEM files once at startup.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the TLS {what} {} is not valid PEM: {message}", path.display())]
    Pem {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("the TLS certificate file {} holds no certificate (expected a PEM \"BEGIN CERTIFICATE\" block)", .0.display())]
    NoCertificate(PathBuf),
    #[error("the TLS key file {} holds no private key (expected a PEM PKCS#8, PKCS#1 or SEC1 key)", .0.display())]
    NoKey(PathBuf),
    #[error("the TLS certificate {} and key {} cannot be used together: {message}", cert.display(), key.display())]
    Unusable {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
}

/// The application protocol a listener speaks, offered in the handshake (ALPN). gRPC
/// clients refuse a TLS server that does not select `h2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    Http1,
    Http2,
}

/// A loaded certificate chain and key; cheap to clone, one for all listeners.
#[derive(Clone)]
pub struct TlsConfig {
    server: Arc<ServerConfig>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.write_str("TlsConfig { .. }")
    }
}

impl TlsConfig {
    /// Reads a PEM certificate chain (leaf first) and a PEM private key.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let read = |what: &'static str, path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                what,
                path: path.to_path_buf(),
                source,
            })
        };
        let pem_error =
            |what: &'static str, path: &Path, e: rustls::pki_types::pem::Error| TlsError::Pem {
                what,
                path: path.to_path_buf(),
                message: e.to_string(),
            };
        let cert_pem = read("certificate file", cert)?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_error("certificate file", cert, e))?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate(cert.to_path_buf()));
        }
        let key_pem = read("key file", key)?;
        let private = match PrivateKeyDer::from_pem_slice(&key_pem) {
            Ok(k) => k,
            Err(rustls::pki_types::pem::Error::NoItemsFound) => {
                return Err(TlsError::NoKey(key.to_path_buf()))
            }
            Err(e) => return Err(pem_error("key file", key, e)),
        };
        let unusable = |message: String| TlsError::Unusable {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            message,
        };
        let server =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| unusable(e.to_string()))?
                .with_no_client_auth()
                .with_single_cert(chain, private)
                .map_err(|e| unusable(e.to_string()))?;
        Ok(TlsConfig {
            server: Arc::new(server),
        })
    }

    pub(crate) fn acceptor(&self, alpn: Alpn) -> TlsAcceptor {
        let mut server = ServerConfig::clone(&self.server);
        server.alpn_protocols = vec![match alpn {
            Alpn::Http1 => b"http/1.1".to_vec(),
            Alpn::Http2 => b"h2".to_vec(),
        }];
        TlsAcceptor::from(Arc::new(server))
    }
}
