//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export` on tonic,
//! behind `grpc_admission`, which checks the limits before tonic decodes anything.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::{HeaderValue, Request, Response};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tls::{Alpn, TlsListener};
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::{Code, Status};

use crate::convert::{map_request, Rejections};
use crate::grpc_admission::{Admit, Reservation};
use crate::grpc_status::to_status;
use crate::pipeline::Ingest;
use crate::Access;

pub use crate::grpc_status::RETRY_INFO_TRAILER;

/// Serves OTLP/gRPC on `listener` (over TLS and requiring the token when `access` says
/// so) until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    ingest: Ingest,
    max_message_bytes: usize,
    access: Access,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let service = TraceServiceServer::new(Receiver {
        ingest: ingest.clone(),
    })
    .accept_compressed(CompressionEncoding::Gzip)
    // The limit applies after decompression too, so a gzip bomb stops here.
    .max_decoding_message_size(max_message_bytes);
    // Admission checks the token from the headers before it reads or decodes the body,
    // so a client without it cannot make us spend memory or CPU.
    let token = access.token;
    let server =
        tonic::transport::Server::builder().layer(tower::layer::layer_fn(move |inner| Admit {
            inner: DecodeErrors { inner },
            ingest: ingest.clone(),
            max_message_bytes,
            token: token.clone(),
        }));
    match access.tls {
        Some(tls) => {
            let incoming = TlsListener::new(listener, &tls, Alpn::Http2).into_incoming();
            server
                .serve_with_incoming_shutdown(service, incoming, shutdown)
                .await
        }
        None => {
            let incoming =
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            server
                .serve_with_incoming_shutdown(service, incoming, shutdown)
                .await
        }
    }
}

struct Receiver {
    ingest: Ingest,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, Status> {
        if let Some(reached) = request.extensions().get::<HandlerReached>() {
            reached.0.store(true, Ordering::Relaxed);
        }
        // Held until the spans are written or refused; requests reach here only through
        // `Admit`, which reserved it.
        let _permit = request
            .extensions()
            .get::<Reservation>()
            .and_then(Reservation::take);
        let remote = request.remote_addr();
        let mut rejections = Rejections::default();
        let window = self.ingest.time_window();
        let records = map_request(request.into_inner(), &window, &mut rejections);
        self.ingest.count_out_of_window(rejections.out_of_window());
        if !rejections.is_empty() {
            tracing::warn!(remote = ?remote, rejected = rejections.count(), accepted = records.len(), reason = %rejections.message(), "OTLP/gRPC spans rejected");
        }
        self.ingest
            .submit(records)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(tonic::Response::new(response(&rejections)))
    }
}

/// The Export response: `partial_success` only when something was rejected.
pub(crate) fn response(rejections: &Rejections) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: (!rejections.is_empty()).then(|| ExportTracePartialSuccess {
            rejected_spans: i64::try_from(rejections.count()).unwrap_or(i64::MAX),
            error_message: rejections.message(),
        }),
    }
}

/// Set by the handler: a request that never reached it failed in tonic's decoding.
#[derive(Clone)]
struct HandlerReached(Arc<AtomicBool>);

/// tonic answers bodies it cannot decode with INTERNAL (malformed protobuf, bad gzip),
/// OUT_OF_RANGE (over the size limit) or RESOURCE_EXHAUSTED (over it once
/// decompressed). OTLP clients retry the last two, so a bad request would come back
/// forever; for OTLP all of them are the client's bad input: INVALID_ARGUMENT, which is
/// final. Only responses from requests that never reached our handler are rewritten,
/// so our own RESOURCE_EXHAUSTED (back-pressure) stays what it is.
#[derive(Clone)]
struct DecodeErrors<S> {
    inner: S,
}

impl<S, B, RB> tower::Service<Request<B>> for DecodeErrors<S>
where
    S: tower::Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let reached = Arc::new(AtomicBool::new(false));
        req.extensions_mut().insert(HandlerReached(reached.clone()));
        let path = req.uri().path().to_string();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut resp = fut.await?;
            if reached.load(Ordering::Relaxed) {
                return Ok(resp);
            }
            let code = resp
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<i32>().ok())
                .map(Code::from_i32);
            if let Some(Code::Internal | Code::OutOfRange | Code::ResourceExhausted) = code {
                let message = resp
                    .headers()
                    .get("grpc-message")
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .unwrap_or_default();
                tracing::warn!(%path, reason = %percent_decode(&message), "OTLP/gRPC request refused: cannot decode");
                resp.headers_mut().insert(
                    "grpc-status",
                    HeaderValue::from(Code::InvalidArgument as i32),
                );
            }
            Ok(resp)
        })
    }
}

/// grpc-message is percent-encoded; for the log line only.
fn percent_decode(s: &str) -> String {
    fn hex(c: u8) -> Option<u8> {
        (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(hi), Some(lo)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
