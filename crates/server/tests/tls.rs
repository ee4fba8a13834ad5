//! The query API over TLS through `server::run`: HTTPS with a real rustls client, the
//! API key still required, and plain HTTP refused on the TLS port.

use std::time::Duration;

use server::{AppState, ServiceConfig};
use store::testing::TestDb;
use tls::testing::TestCertificates;
use tls::{Alpn, TlsConfig, TlsListener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BOUND: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_served_over_tls() {
    let db = TestDb::migrated().await;
    let certs = TestCertificates::generate();
    let config = TlsConfig::from_pem_files(&certs.cert, &certs.key).expect("TLS config");
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = tcp.local_addr().expect("address");
    let state = AppState::new(
        store::db::pool(&db.url, 2).expect("pool"),
        ServiceConfig {
            api_key: Some("k3y".into()),
            ..ServiceConfig::default()
        },
    );
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let served = tokio::spawn(server::run(
        TlsListener::new(tcp, &config, Alpn::Http1),
        state,
        stop_rx,
    ));

    let https = |request: String| {
        let certs = &certs;
        async move {
            let resp = tokio::time::timeout(BOUND, certs.https(addr, request.as_bytes()))
                .await
                .expect("answered within 5 s rather than hanging")
                .expect("HTTPS exchange");
            String::from_utf8_lossy(&resp).into_owned()
        }
    };
    let health =
        https("GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".into()).await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    let query = |key: &str| {
        let body = r#"{"query": "in:traces time:last_1h limit:1"}"#;
        format!(
            "POST /api/query HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n{key}Connection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let refused = https(query("")).await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let answered = https(query("x-api-key: k3y\r\n")).await;
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    assert!(answered.contains("\"results\""), "{answered}");

    let mut plain = tokio::net::TcpStream::connect(addr).await.expect("connect");
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("send");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(BOUND, plain.read_to_end(&mut out))
        .await
        .expect("closed within 5 s rather than hanging");
    assert!(
        !out.starts_with(b"HTTP/"),
        "plain HTTP was answered: {}",
        String::from_utf8_lossy(&out)
    );

    let _ = stop.send(true);
    tokio::time::timeout(BOUND, served)
        .await
        .expect("stopped within 5 s")
        .expect("task")
        .expect("served");
}
