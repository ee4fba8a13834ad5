//! Who may send spans: with a token set, both receivers refuse requests without
//! `authorization: Bearer <token>` (gRPC UNAUTHENTICATED, HTTP 401 with a
//! `google.rpc.Status` in the request's encoding) before reading the body, and store
//! nothing from them; with TLS set, both speak only TLS.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use otlp::auth::Token;
use otlp::rpc_status::RpcStatus;
use otlp::Options;
use prost::Message;
use tls::testing::TestCertificates;
use tls::TlsConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::{Channel, Endpoint};
use tower::ServiceExt;

const TOKEN: &str = "s3cret-token";
const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";
const BOUND: Duration = Duration::from_secs(5);

async fn harness(tls: Option<TlsConfig>) -> Harness {
    Harness::start_options(Options {
        token: Token::new(TOKEN),
        tls,
        max_request_bytes: 64 * 1024,
        ..Options::default()
    })
    .await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn authorized<T>(message: T, authorization: Option<&str>) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    if let Some(v) = authorization {
        req.metadata_mut()
            .insert("authorization", v.parse().expect("metadata value"));
    }
    req
}

/// The refusals, and what each one's message must say.
const REFUSED: [(Option<&str>, &str); 4] = [
    (None, "authentication required"),
    (Some("Bearer wrong-token"), "invalid bearer token"),
    (Some("Bearer s3cret-token-and-more"), "invalid bearer token"),
    (Some("Basic s3cret-token"), "Bearer <token>"),
];

async fn grpc_refusals_then_acceptance(client: &mut TraceServiceClient<Channel>, what: &str) {
    for (i, (authorization, says)) in REFUSED.iter().enumerate() {
        let req = request(vec![span(1, i as u8 + 1, "refused")]);
        let status = client
            .export(authorized(req, *authorization))
            .await
            .expect_err("refused");
        assert_eq!(
            status.code(),
            tonic::Code::Unauthenticated,
            "{what} {authorization:?}: {status:?}"
        );
        assert!(status.message().contains(says), "{what}: {status:?}");
    }
    let req = request(vec![span(2, 1, "accepted")]);
    client
        .export(authorized(req, Some(&bearer(TOKEN))))
        .await
        .unwrap_or_else(|e| panic!("{what}: the right token is accepted: {e:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_requires_the_bearer_token() {
    let mut h = harness(None).await;
    let mut client = h.grpc_client().await;
    grpc_refusals_then_acceptance(&mut client, "gRPC").await;
    assert_eq!(
        h.span_names().await,
        ["accepted"],
        "nothing refused is stored"
    );
    h.stop().await;
}

/// Bodies that would be INVALID_ARGUMENT (oversize, undecodable) are UNAUTHENTICATED
/// without the token: the check comes before tonic reads and decodes the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_checks_the_token_before_the_body() {
    let mut h = harness(None).await;
    let oversize = request(vec![span(1, 1, &"x".repeat(h.max_request_bytes * 2))]);
    for (what, body) in [
        ("oversize", grpc_frame(false, &oversize.encode_to_vec())),
        (
            "malformed",
            grpc_frame(false, &[0x0a, 0xff, 0xff, 0xff, 0x0f]),
        ),
    ] {
        let out = grpc_raw(h.grpc, body, None).await;
        assert_eq!(out.code, tonic::Code::Unauthenticated, "{what}: {out:?}");
    }
    assert_eq!(h.count_spans().await, 0);
    h.stop().await;
}

async fn http_call(
    router: &axum::Router,
    content_type: &str,
    authorization: Option<&str>,
    body: Vec<u8>,
) -> HttpOutcome {
    let mut req = Request::post("/v1/traces").header("content-type", content_type);
    if let Some(v) = authorization {
        req = req.header("authorization", v);
    }
    let resp = router
        .clone()
        .oneshot(req.body(Body::from(body)).expect("request"))
        .await
        .expect("router answers");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    HttpOutcome {
        status,
        headers,
        body,
    }
}

/// The code and message of a google.rpc.Status body in either encoding.
fn rpc_status(out: &HttpOutcome, content_type: &str) -> (i32, String) {
    if content_type == PROTOBUF {
        let st = RpcStatus::decode(out.body.as_ref()).expect("protobuf Status");
        (st.code, st.message)
    } else {
        let v = out.json();
        (
            i32::try_from(v["code"].as_i64().expect("code")).expect("i32"),
            v["message"].as_str().expect("message").to_string(),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_requires_the_bearer_token_and_answers_in_the_request_encoding() {
    let mut h = harness(None).await;
    let router = otlp::http::with_token(h.http_router(), Token::new(TOKEN));
    // Spans are dated now: the receivers refuse times outside the retention window.
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    let json_body = |name: &str| {
        serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708",
            "name": name, "startTimeUnixNano": now.to_string(),
            "endTimeUnixNano": (now + 1_000_000).to_string()}]}]}]})
        .to_string()
        .into_bytes()
    };
    for content_type in [PROTOBUF, JSON] {
        for (authorization, says) in REFUSED {
            let body = if content_type == PROTOBUF {
                request(vec![span(1, 1, "refused")]).encode_to_vec()
            } else {
                json_body("refused")
            };
            let out = http_call(&router, content_type, authorization, body).await;
            let what = format!("{content_type} {authorization:?}");
            assert_eq!(out.status, StatusCode::UNAUTHORIZED, "{what}");
            assert_eq!(
                out.headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok()),
                Some(content_type),
                "{what}: encoded like the request"
            );
            assert_eq!(
                out.headers
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok()),
                Some("Bearer"),
                "{what}"
            );
            let (code, message) = rpc_status(&out, content_type);
            assert_eq!(code, tonic::Code::Unauthenticated as i32, "{what}");
            assert!(message.contains(says), "{what}: {message}");
        }
    }
    // Undecodable and unknown-type bodies: still 401, the body is never looked at.
    let out = http_call(&router, PROTOBUF, None, vec![0x0a, 0xff, 0xff]).await;
    assert_eq!(out.status, StatusCode::UNAUTHORIZED);
    let out = http_call(&router, "text/plain", Some("Bearer nope"), b"hi".to_vec()).await;
    assert_eq!(out.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        rpc_status(&out, JSON).0,
        tonic::Code::Unauthenticated as i32
    );

    let ok = http_call(
        &router,
        PROTOBUF,
        Some(&bearer(TOKEN)),
        request(vec![span(2, 1, "accepted-protobuf")]).encode_to_vec(),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");
    let ok = http_call(
        &router,
        JSON,
        Some(&bearer(TOKEN)),
        json_body("accepted-json"),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");
    assert_eq!(
        h.span_names().await,
        ["accepted-json", "accepted-protobuf"],
        "nothing refused is stored"
    );
    h.stop().await;
}

/// On the real socket: a client that announces a huge body and sends none of it is
/// answered 401 at once; the receiver did not wait to read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_refuses_an_unauthenticated_body_without_reading_it() {
    let mut h = harness(None).await;
    let mut tcp = tokio::net::TcpStream::connect(h.http)
        .await
        .expect("connect");
    tcp.write_all(
        b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n\
          Content-Length: 1000000000\r\n\r\n",
    )
    .await
    .expect("send the head");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(BOUND, tcp.read(&mut buf))
        .await
        .expect("answered within 5 s rather than waiting for the body")
        .expect("read");
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    h.stop().await;
}

fn http_post_raw(addr: SocketAddr, authorization: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: localhost:{}\r\nContent-Type: {PROTOBUF}\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        addr.port(),
        body.len()
    );
    if let Some(v) = authorization {
        req.push_str(&format!("Authorization: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_over_tls_with_the_token() {
    let certs = TestCertificates::generate();
    let config = TlsConfig::from_pem_files(&certs.cert, &certs.key).expect("TLS config");
    let mut h = harness(Some(config)).await;
    let body = request(vec![span(3, 1, "over-tls")]).encode_to_vec();

    let resp = tokio::time::timeout(
        BOUND,
        certs.https(h.http, &http_post_raw(h.http, None, &body)),
    )
    .await
    .expect("answered")
    .expect("HTTPS exchange");
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");

    let resp = tokio::time::timeout(
        BOUND,
        certs.https(h.http, &http_post_raw(h.http, Some(&bearer(TOKEN)), &body)),
    )
    .await
    .expect("answered")
    .expect("HTTPS exchange");
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");

    // Plain HTTP to the TLS port gets no HTTP answer.
    let mut tcp = tokio::net::TcpStream::connect(h.http)
        .await
        .expect("connect");
    tcp.write_all(&http_post_raw(h.http, Some(&bearer(TOKEN)), &body))
        .await
        .expect("send");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(BOUND, tcp.read_to_end(&mut out))
        .await
        .expect("closed within 5 s rather than hanging");
    assert!(
        !out.starts_with(b"HTTP/"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(h.span_names().await, ["over-tls"]);
    h.stop().await;
}

/// A tonic client whose connections are rustls streams trusting the test CA.
async fn grpc_tls_client(
    certs: Arc<TestCertificates>,
    addr: SocketAddr,
) -> TraceServiceClient<Channel> {
    let connector = tower::service_fn(move |_: axum::http::Uri| {
        let certs = certs.clone();
        async move { certs.connect(addr, b"h2").await.map(TokioIo::new) }
    });
    let channel = Endpoint::from_shared(format!("http://localhost:{}", addr.port()))
        .expect("uri")
        .connect_timeout(BOUND)
        .connect_with_connector(connector)
        .await
        .expect("gRPC over TLS connects");
    TraceServiceClient::new(channel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_tls_with_the_token() {
    let certs = Arc::new(TestCertificates::generate());
    let config = TlsConfig::from_pem_files(&certs.cert, &certs.key).expect("TLS config");
    let mut h = harness(Some(config)).await;
    let mut client = grpc_tls_client(certs.clone(), h.grpc).await;
    grpc_refusals_then_acceptance(&mut client, "gRPC over TLS").await;

    // A plain-text (h2c) client gets nowhere on the TLS port.
    let plain = async {
        let mut c = srql_bench::otlp_export::connect(&format!("http://{}", h.grpc))
            .await
            .map_err(|e| e.to_string())?;
        let req: ExportTraceServiceRequest = request(vec![span(4, 1, "plain")]);
        c.export(authorized(req, Some(&bearer(TOKEN))))
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    };
    let outcome = tokio::time::timeout(BOUND, plain)
        .await
        .expect("failed within 5 s rather than hanging");
    assert!(outcome.is_err(), "plain text was served on the TLS port");
    assert_eq!(h.span_names().await, ["accepted"]);
    h.stop().await;
}
