//! The TLS listener under axum, with a real rustls client: HTTPS works, plain TCP is
//! refused, a stalled or failed handshake holds up nobody, and bad PEM files give an
//! error that names the file.

use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::get;
use tls::testing::TestCertificates;
use tls::{Alpn, TlsConfig, TlsError, TlsListener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const GET: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
const BOUND: Duration = Duration::from_secs(5);

async fn serve(certs: &TestCertificates, handshake_timeout: Duration) -> SocketAddr {
    let config = TlsConfig::from_pem_files(&certs.cert, &certs.key).expect("load");
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let listener =
        TlsListener::new(tcp, &config, Alpn::Http1).with_handshake_timeout(handshake_timeout);
    let addr = listener.local_addr().expect("address");
    let app = axum::Router::new().route("/healthz", get(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn https_ok(certs: &TestCertificates, addr: SocketAddr) {
    let resp = tokio::time::timeout(BOUND, certs.https(addr, GET))
        .await
        .expect("answered within 5 s rather than hanging")
        .expect("HTTPS request");
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("ok"), "{text}");
}

/// What a plain-text client gets back before the server closes: never an HTTP answer.
async fn plain_http(addr: SocketAddr) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(GET).await.expect("send");
    let mut out = Vec::new();
    tokio::time::timeout(BOUND, tcp.read_to_end(&mut out))
        .await
        .expect("closed within 5 s rather than hanging")
        .ok();
    out
}

#[tokio::test]
async fn https_is_served_and_plain_http_is_refused() {
    let certs = TestCertificates::generate();
    let addr = serve(&certs, Duration::from_secs(10)).await;
    https_ok(&certs, addr).await;
    let plain = plain_http(addr).await;
    assert!(
        !plain.starts_with(b"HTTP/"),
        "plain text got an HTTP answer: {}",
        String::from_utf8_lossy(&plain)
    );
    // The refused client did not break the listener.
    https_ok(&certs, addr).await;
}

#[tokio::test]
async fn a_stalled_handshake_blocks_nobody_and_is_dropped_after_the_timeout() {
    let certs = TestCertificates::generate();
    let addr = serve(&certs, Duration::from_millis(500)).await;
    // Connected, never says a word.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(addr).await.expect("connect"));
    }
    https_ok(&certs, addr).await;
    for mut c in idle {
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(BOUND, c.read(&mut buf))
            .await
            .expect("the server closed the idle connection within 5 s")
            .unwrap_or(0);
        assert_eq!(n, 0, "the server closed without a word");
    }
    https_ok(&certs, addr).await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_fails_and_the_next_one_is_served() {
    let certs = TestCertificates::generate();
    let other = TestCertificates::generate();
    let addr = serve(&certs, Duration::from_secs(10)).await;
    let err = other
        .https(addr, GET)
        .await
        .expect_err("a certificate from another CA is refused");
    assert!(err.to_string().contains("certificate"), "{err}");
    https_ok(&certs, addr).await;
}

#[tokio::test]
async fn bad_files_give_an_error_naming_the_file() {
    let certs = TestCertificates::generate();
    let other = TestCertificates::generate();
    let missing = certs.dir.join("missing.pem");
    let garbage = certs.dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").expect("write");

    let err = TlsConfig::from_pem_files(&missing, &certs.key).expect_err("missing cert");
    assert!(matches!(err, TlsError::Read { .. }), "{err}");
    assert!(err.to_string().contains("missing.pem"), "{err}");

    let err = TlsConfig::from_pem_files(&certs.cert, &missing).expect_err("missing key");
    assert!(err.to_string().contains("key file"), "{err}");

    let err = TlsConfig::from_pem_files(&garbage, &certs.key).expect_err("no certificate");
    assert!(matches!(err, TlsError::NoCertificate(_)), "{err}");
    assert!(err.to_string().contains("garbage.pem"), "{err}");

    // A certificate given as the key.
    let err = TlsConfig::from_pem_files(&certs.cert, &certs.cert).expect_err("no key");
    assert!(matches!(err, TlsError::NoKey(_)), "{err}");

    let err = TlsConfig::from_pem_files(&certs.cert, &other.key).expect_err("mismatch");
    assert!(matches!(err, TlsError::Unusable { .. }), "{err}");

    TlsConfig::from_pem_files(&certs.cert, &certs.key).expect("the right pair loads");
}
