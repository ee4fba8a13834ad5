//! `srql serve` with SRQL_TLS_CERT / SRQL_TLS_KEY and SRQL_OTLP_TOKEN, as a user runs it:
//! every listener speaks TLS, OTLP wants the token, and bad settings stop the start with
//! a message naming the problem, before any database is started.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tls::testing::TestCertificates;

mod support;
use support::ServiceLog;

const BOUND: Duration = Duration::from_secs(5);

fn data_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("srql-cli-tls-{tag}-{}", std::process::id()))
}

fn srql(dir: &PathBuf) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_srql"));
    c.env_remove("DATABASE_URL")
        .env_remove("SRQL_TLS_CERT")
        .env_remove("SRQL_TLS_KEY")
        .env_remove("SRQL_OTLP_TOKEN")
        .env("SRQL_DATA_DIR", dir)
        .env("SRQL_LOG", "warn")
        .stdin(Stdio::null());
    c
}

fn fails_with(cmd: &mut Command, says: &[&str]) {
    let started = Instant::now();
    let out = cmd.output().expect("run srql");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for s in says {
        assert!(stderr.contains(s), "{s:?} in: {stderr}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "failed at once, not after starting a database"
    );
}

#[test]
fn tls_settings_go_together_and_bad_files_stop_the_start() {
    let dir = data_dir("bad");
    let certs = TestCertificates::generate();
    let cert = certs.cert.to_string_lossy().into_owned();
    fails_with(
        srql(&dir).args(["serve", "--tls-cert", &cert]),
        &["--tls-key"],
    );
    fails_with(
        srql(&dir).args(["serve"]).env("SRQL_TLS_KEY", &certs.key),
        &["--tls-cert"],
    );
    let missing = certs.dir.join("missing.pem");
    fails_with(
        srql(&dir)
            .args(["serve", "--tls-key", &cert])
            .env("SRQL_TLS_CERT", &missing),
        &["cannot read the TLS certificate file", "missing.pem"],
    );
    fails_with(
        srql(&dir).args(["serve", "--tls-cert", &cert, "--tls-key", &cert]),
        &["holds no private key", "cert.pem"],
    );
    assert!(
        !dir.join("postmaster.pid").exists(),
        "no database was started"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_speaks_tls_everywhere_and_otlp_wants_the_token() {
    let dir = data_dir("serve");
    let certs = TestCertificates::generate();
    // Port 0 everywhere; the bound ports come from the log (see `support`).
    let mut child = srql(&dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(["--otlp-grpc-listen", "127.0.0.1:0"])
        .args(["--otlp-http-listen", "127.0.0.1:0"])
        .env("SRQL_TLS_CERT", &certs.cert)
        .env("SRQL_TLS_KEY", &certs.key)
        .env("SRQL_OTLP_TOKEN", "t0ken")
        .env("SRQL_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let log = ServiceLog::follow(child.stderr.take().expect("stderr"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let api = log.port_of("serving SRQL", deadline);
    let grpc = log.port_of("OTLP/gRPC receiver listening", deadline);
    let http = log.port_of("OTLP/HTTP receiver listening", deadline);
    let https = |port: u16, request: String| {
        let (certs, log) = (&certs, &log);
        async move {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let resp = tokio::time::timeout(BOUND, certs.https(addr, request.as_bytes()))
                .await
                .expect("answered within 5 s rather than hanging")
                .unwrap_or_else(|e| panic!("HTTPS exchange: {e}; serve's log:\n{}", log.text()));
            String::from_utf8_lossy(&resp).into_owned()
        }
    };
    let health = https(
        api,
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".into(),
    )
    .await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    let export = |authorization: &str| {
        let body = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"GET /","startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000001000000"}]}]}]}"#;
        format!(
            "POST /v1/traces HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n{authorization}Connection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let refused = https(http, export("Authorization: Bearer wrong\r\n")).await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let accepted = https(http, export("Authorization: Bearer t0ken\r\n")).await;
    assert!(accepted.starts_with("HTTP/1.1 200"), "{accepted}");

    // The gRPC receiver: TLS, and h2 chosen in the handshake as gRPC clients require.
    let stream = tokio::time::timeout(
        BOUND,
        certs.connect(std::net::SocketAddr::from(([127, 0, 0, 1], grpc)), b"h2"),
    )
    .await
    .expect("handshake within 5 s")
    .expect("TLS handshake with the gRPC receiver");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    drop(stream);

    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = child.wait().expect("wait");
    assert!(status.success(), "clean exit on Ctrl-C: {status:?}");
    let log = log.finish();
    let tls_listeners = log.lines().filter(|l| l.contains("tls=true")).count();
    assert_eq!(
        tls_listeners, 3,
        "API, OTLP/gRPC and OTLP/HTTP say TLS: {log}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
