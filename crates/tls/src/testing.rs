//! For tests of TLS listeners: a throwaway CA and a server certificate for `localhost`
//! and 127.0.0.1 signed by it (made with the `openssl` command, which
//! `scripts/ensure-deps` installs), and a rustls client speaking HTTP/1.1.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// PEM files in a directory of their own, removed on drop.
pub struct TestCertificates {
    pub dir: PathBuf,
    /// The CA that signed `cert`: what clients trust.
    pub ca: PathBuf,
    /// The server's certificate (CN and SAN `localhost`, SAN IP 127.0.0.1).
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Drop for TestCertificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TestCertificates {
    /// Generates a fresh CA and server certificate (EC P-256, valid two days).
    /// Panics, naming the command, when `openssl` is missing or fails.
    pub fn generate() -> TestCertificates {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "srql-tls-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the certificate directory");
        let certs = TestCertificates {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            dir,
        };
        let p = |name: &str| certs.dir.join(name).to_string_lossy().into_owned();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        openssl(
            &[&["req", "-x509", "-nodes", "-days", "2"][..], &ec[..]].concat(),
            &[
                ("-subj", "/CN=srql test CA".into()),
                ("-keyout", p("ca.key")),
                ("-out", p("ca.pem")),
            ],
        );
        openssl(
            &[&["req", "-nodes"][..], &ec[..]].concat(),
            &[
                ("-subj", "/CN=localhost".into()),
                ("-keyout", p("key.pem")),
                ("-out", p("server.csr")),
            ],
        );
        std::fs::write(
            certs.dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write the extensions file");
        openssl(
            &["x509", "-req", "-days", "2", "-set_serial", "2"],
            &[
                ("-in", p("server.csr")),
                ("-CA", p("ca.pem")),
                ("-CAkey", p("ca.key")),
                ("-extfile", p("server.ext")),
                ("-out", p("cert.pem")),
            ],
        );
        certs
    }

    /// A rustls client trusting only this CA, offering `alpn`.
    pub fn client_config(&self, alpn: &[u8]) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.ca).expect("read the CA") {
            roots.add(cert.expect("CA PEM")).expect("add the CA");
        }
        let mut config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        Arc::new(config)
    }

    /// A TLS connection to `addr` offering `alpn`, the server verified as `localhost`.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        alpn: &[u8],
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let connector = tokio_rustls::TlsConnector::from(self.client_config(alpn));
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").expect("server name");
        connector.connect(name, tcp).await
    }

    /// Sends `request` (a whole HTTP/1.1 request; say `Connection: close`) over TLS to
    /// `addr`, verifying the server as `localhost`; returns everything the server sent
    /// before closing.
    pub async fn https(&self, addr: SocketAddr, request: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut tls = self.connect(addr, b"http/1.1").await?;
        tls.write_all(request).await?;
        tls.flush().await?;
        let mut out = Vec::new();
        match tls.read_to_end(&mut out).await {
            Ok(_) => Ok(out),
            // Servers commonly close without close_notify after `Connection: close`.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => Ok(out),
            Err(e) => Err(e),
        }
    }
}

fn openssl(args: &[&str], paths: &[(&str, String)]) {
    let mut cmd = Command::new("openssl");
    cmd.args(args);
    for (flag, value) in paths {
        cmd.arg(flag).arg(value);
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run openssl (scripts/ensure-deps installs it) {args:?}: {e}")
    });
    assert!(
        out.status.success(),
        "openssl {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
