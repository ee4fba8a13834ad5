//! OTLP/HTTP: `POST /v1/traces` with a protobuf or JSON body, optionally gzipped.
//!
//! Responses follow the OTLP/HTTP specification: 200 with an `ExportTraceServiceResponse`
//! (carrying `partial_success` when spans were rejected), 400 with a `google.rpc.Status`
//! for bad input (413 for a body over a limit: bytes, spans, decode budget), 429 (queue
//! or decode budget full) or 503 (database unavailable) with `Retry-After`, all encoded
//! like the request (protobuf or JSON).

use std::future::Future;
use std::io::Read;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tls::{Alpn, TlsListener};
use tokio::net::TcpListener;
use tonic::Code;

use crate::admission::Refusal;
use crate::auth::Token;
use crate::convert::{map_request, Rejections};
use crate::pipeline::{Ingest, IngestError};
use crate::rpc_status::RpcStatus;
use crate::Access;

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

#[derive(Clone)]
struct HttpState {
    ingest: Ingest,
    max_body_bytes: usize,
}

/// The OTLP/HTTP routes, for serving or for calling in tests.
pub fn router(ingest: Ingest, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/traces", post(export))
        .with_state(HttpState {
            ingest,
            max_body_bytes,
        })
}

/// Serves OTLP/HTTP on `listener` (over TLS and requiring the token when `access` says
/// so) until `shutdown` resolves; in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    ingest: Ingest,
    max_body_bytes: usize,
    access: Access,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = with_token(router(ingest, max_body_bytes), access.token);
    match access.tls {
        Some(tls) => {
            let listener = TlsListener::new(listener, &tls, Alpn::Http1);
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

/// `routes` behind the bearer token, when there is one. A layer on the whole router, so
/// the check runs before any handler reads the body, and unknown paths are refused too.
pub fn with_token(routes: Router, token: Option<Token>) -> Router {
    match token {
        Some(token) => routes.layer(axum::middleware::from_fn_with_state(token, require_token)),
        None => routes,
    }
}

/// 401 with a `google.rpc.Status` (UNAUTHENTICATED) in the request's encoding, JSON when
/// the content type is unknown; OTLP clients do not retry it.
async fn require_token(
    State(token): State<Token>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let header = request.headers().get(header::AUTHORIZATION);
    let Err(refusal) = token.check(header.map(HeaderValue::as_bytes)) else {
        return next.run(request).await;
    };
    tracing::warn!(reason = %refusal, "OTLP/HTTP request refused");
    let encoding = content_type(request.headers()).unwrap_or(Encoding::Json);
    let failure = Failure {
        http: StatusCode::UNAUTHORIZED,
        status: RpcStatus::new(Code::Unauthenticated, refusal.to_string()),
        retry_after_secs: None,
    };
    let mut resp = failure_response(encoding, failure);
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => PROTOBUF,
            Encoding::Json => JSON,
        }
    }
}

/// A failed request: the status, the google.rpc.Status to send, and the retry delay.
struct Failure {
    http: StatusCode,
    status: RpcStatus,
    retry_after_secs: Option<u64>,
}

impl Failure {
    fn bad(message: String) -> Self {
        Failure {
            http: StatusCode::BAD_REQUEST,
            status: RpcStatus::new(Code::InvalidArgument, message),
            retry_after_secs: None,
        }
    }
}

async fn export(State(state): State<HttpState>, headers: HeaderMap, body: Body) -> Response {
    // Until the content type is known, errors are written in JSON, the readable one.
    let encoding = match content_type(&headers) {
        Ok(e) => e,
        Err(message) => {
            tracing::warn!(reason = %message, "OTLP/HTTP request refused");
            let failure = Failure {
                http: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                status: RpcStatus::new(Code::InvalidArgument, message),
                retry_after_secs: None,
            };
            return failure_response(Encoding::Json, failure);
        }
    };
    match handle(&state, &headers, body, encoding).await {
        Ok(resp) => ok_response(encoding, &resp),
        Err(f) => {
            if f.http.is_client_error() && f.http != StatusCode::TOO_MANY_REQUESTS {
                tracing::warn!(status = %f.http, reason = %f.status.message, "OTLP/HTTP request refused");
            }
            failure_response(encoding, f)
        }
    }
}

async fn handle(
    state: &HttpState,
    headers: &HeaderMap,
    body: Body,
    encoding: Encoding,
) -> Result<ExportTraceServiceResponse, Failure> {
    let max = state.max_body_bytes;
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("" | "identity") => false,
        Some("gzip") => true,
        Some(other) => {
            return Err(Failure {
                http: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                status: RpcStatus::new(
                    Code::InvalidArgument,
                    format!("Content-Encoding {other:?} is not supported (gzip is)"),
                ),
                retry_after_secs: None,
            })
        }
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let oversize = || {
        state.ingest.count_oversize();
        too_large(max)
    };
    if declared.is_some_and(|n| n > max as u64) {
        return Err(oversize());
    }
    let admission = state.ingest.admission();
    let refused = |r: Refusal| {
        state.ingest.count_refusal(&r);
        refusal_failure(r, state.ingest.config().retry_after)
    };
    // A gzipped body may inflate up to the limit, whatever its declared length.
    let expected = match declared {
        Some(n) if !gzip => usize::try_from(n).unwrap_or(max),
        _ => max,
    };
    let reserved = admission.reserve(expected).await.map_err(refused)?;
    let raw = axum::body::to_bytes(body, max).await.map_err(|e| {
        if is_length_limit(&e) {
            oversize()
        } else {
            Failure::bad(format!("cannot read the body: {e}"))
        }
    })?;
    let bytes = if gzip {
        let inflated = gunzip(&raw, max).inspect_err(|f| {
            if f.http == StatusCode::PAYLOAD_TOO_LARGE {
                state.ingest.count_oversize();
            }
        })?;
        drop(raw);
        bytes::Bytes::from(inflated)
    } else {
        raw
    };

    // Counted and paid for before anything is decoded; held until the spans are written.
    let shape = match encoding {
        Encoding::Protobuf => crate::prescan::protobuf(&bytes),
        Encoding::Json => crate::prescan::json(&bytes),
    };
    let _permit = admission
        .admit(reserved, shape, bytes.len())
        .await
        .map_err(refused)?;

    let mut rejections = Rejections::default();
    let request = match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(bytes.as_ref())
            .map_err(|e| Failure::bad(format!("invalid protobuf: {e}")))?,
        Encoding::Json => crate::json::parse(&bytes, &mut rejections).map_err(Failure::bad)?,
    };
    drop(bytes);
    let window = state.ingest.time_window();
    let records = map_request(request, &window, &mut rejections);
    state.ingest.count_out_of_window(rejections.out_of_window());
    if !rejections.is_empty() {
        tracing::warn!(rejected = rejections.count(), accepted = records.len(), reason = %rejections.message(), "OTLP/HTTP spans rejected");
    }
    state
        .ingest
        .submit(records)
        .await
        .map_err(|e| ingest_failure(&e))?;
    Ok(crate::grpc::response(&rejections))
}

/// Whether reading the body failed on its size limit (rather than on the connection).
fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

fn refusal_failure(refusal: Refusal, retry_after: std::time::Duration) -> Failure {
    match refusal {
        Refusal::Invalid(message) => Failure::bad(message),
        Refusal::TooLarge(message) => Failure {
            http: StatusCode::PAYLOAD_TOO_LARGE,
            status: RpcStatus::new(Code::InvalidArgument, message),
            retry_after_secs: None,
        },
        Refusal::Busy => ingest_failure(&IngestError::Busy { retry_after }),
    }
}

fn too_large(max: usize) -> Failure {
    Failure {
        http: StatusCode::PAYLOAD_TOO_LARGE,
        status: RpcStatus::new(
            Code::InvalidArgument,
            format!("request body larger than the limit of {max} bytes"),
        ),
        retry_after_secs: None,
    }
}

/// Decompresses at most `max` bytes: a small body that inflates past the limit (a gzip
/// bomb) is refused after `max` bytes of work, not after filling memory.
fn gunzip(compressed: &[u8], max: usize) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::with_capacity((compressed.len() * 4).min(max));
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::MultiGzDecoder::new(compressed)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| Failure::bad(format!("invalid gzip body: {e}")))?;
    if out.len() > max {
        let mut f = too_large(max);
        f.status.message =
            format!("request body larger than the limit of {max} bytes once decompressed");
        return Err(f);
    }
    Ok(out)
}

fn content_type(headers: &HeaderMap) -> Result<Encoding, String> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case(PROTOBUF) {
        Ok(Encoding::Protobuf)
    } else if media.eq_ignore_ascii_case(JSON) {
        Ok(Encoding::Json)
    } else {
        Err(format!(
            "Content-Type {ct:?} is not supported: send {PROTOBUF} or {JSON}"
        ))
    }
}

fn ingest_failure(e: &IngestError) -> Failure {
    match e {
        IngestError::Busy { retry_after } => Failure {
            http: StatusCode::TOO_MANY_REQUESTS,
            status: RpcStatus::new(Code::ResourceExhausted, e.to_string())
                .with_retry_after(*retry_after),
            retry_after_secs: Some(whole_seconds(*retry_after)),
        },
        IngestError::ShuttingDown | IngestError::Unavailable(_) => Failure {
            http: StatusCode::SERVICE_UNAVAILABLE,
            status: RpcStatus::new(Code::Unavailable, e.to_string()),
            retry_after_secs: Some(1),
        },
        IngestError::Refused(_) => Failure::bad(e.to_string()),
    }
}

/// Retry-After counts whole seconds; never 0, which would invite an instant retry.
fn whole_seconds(d: std::time::Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

fn ok_response(encoding: Encoding, resp: &ExportTraceServiceResponse) -> Response {
    let body = match encoding {
        Encoding::Protobuf => resp.encode_to_vec(),
        Encoding::Json => {
            let v = match &resp.partial_success {
                Some(p) => serde_json::json!({
                    "partialSuccess": {
                        // int64 is a string in the protobuf JSON mapping.
                        "rejectedSpans": p.rejected_spans.to_string(),
                        "errorMessage": p.error_message,
                    }
                }),
                None => serde_json::json!({}),
            };
            v.to_string().into_bytes()
        }
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, encoding.content_type())],
        body,
    )
        .into_response()
}

fn failure_response(encoding: Encoding, f: Failure) -> Response {
    let body = match encoding {
        Encoding::Protobuf => f.status.encode_to_vec(),
        Encoding::Json => f.status.to_json().to_string().into_bytes(),
    };
    let mut resp = (
        f.http,
        [(header::CONTENT_TYPE, encoding.content_type())],
        body,
    )
        .into_response();
    if let Some(secs) = f.retry_after_secs {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}
