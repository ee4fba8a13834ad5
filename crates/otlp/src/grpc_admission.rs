//! Admission for OTLP/gRPC, in front of tonic: tonic decodes the message before our
//! handler runs, so the limits must be checked on the raw body. This layer reads the
//! body (up to the size limit), inflates it if gzipped (up to the same limit),
//! pre-scans it, reserves its decode budget, and hands tonic the plain message with the
//! reservation in the request's extensions, where the handler keeps it until the spans
//! are written or refused.

use std::future::Future;
use std::io::Read;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::http::{Request, Response};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use tonic::body::Body;
use tonic::Status;

use crate::admission::{DecodePermit, Refusal};
use crate::pipeline::{Ingest, IngestError};

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The decode reservation of one request, taken by the handler.
#[derive(Clone)]
pub(crate) struct Reservation(Arc<Mutex<Option<DecodePermit>>>);

impl Reservation {
    pub(crate) fn take(&self) -> Option<DecodePermit> {
        self.0.lock().ok().and_then(|mut p| p.take())
    }
}

#[derive(Clone)]
pub(crate) struct Admit<S> {
    pub(crate) inner: S,
    pub(crate) ingest: Ingest,
    pub(crate) max_message_bytes: usize,
    pub(crate) token: Option<crate::auth::Token>,
}

impl<S, RB> tower::Service<Request<Body>> for Admit<S>
where
    S: tower::Service<Request<Body>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        // The service made ready is the one to call; a fresh clone stays behind.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        if let Err(status) = crate::grpc_status::authenticate(self.token.as_ref(), req.headers()) {
            return Box::pin(async move { Ok(status.into_http()) });
        }
        if req.uri().path() != EXPORT_PATH {
            return Box::pin(inner.call(req));
        }
        let ingest = self.ingest.clone();
        let max = self.max_message_bytes;
        Box::pin(async move {
            match admit(req, &ingest, max).await {
                Ok(req) => inner.call(req).await,
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

async fn admit(req: Request<Body>, ingest: &Ingest, max: usize) -> Result<Request<Body>, Status> {
    let (mut parts, body) = req.into_parts();
    let gzip = match parts
        .headers
        .get("grpc-encoding")
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("" | "identity") => false,
        Some("gzip") => true,
        Some(other) => {
            return Err(Status::unimplemented(format!(
                "grpc-encoding {other:?} is not supported (gzip is)"
            )))
        }
    };
    let too_large = || {
        ingest.count_oversize();
        Status::invalid_argument(format!(
            "request message larger than the limit of {max} bytes"
        ))
    };
    let refused = |r: Refusal| {
        ingest.count_refusal(&r);
        match r {
            Refusal::Invalid(m) | Refusal::TooLarge(m) => Status::invalid_argument(m),
            Refusal::Busy => crate::grpc_status::to_status(&IngestError::Busy {
                retry_after: ingest.config().retry_after,
            }),
        }
    };
    // gRPC bodies rarely declare their length: room for the largest is held while
    // reading, then shrunk to the estimate.
    let reserved = ingest.admission().reserve(max).await.map_err(refused)?;
    // One length-prefixed message: a flag byte, a 4-byte length, the message.
    let framed = http_body_util::Limited::new(body, max.saturating_add(5))
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                too_large()
            } else {
                Status::invalid_argument(format!("cannot read the request: {e}"))
            }
        })?
        .to_bytes();
    let message = one_message(&framed)?;
    let message = if framed[0] == 1 {
        if !gzip {
            return Err(Status::invalid_argument(
                "compressed message without a grpc-encoding",
            ));
        }
        gunzip(message, max)?.ok_or_else(|| {
            ingest.count_oversize();
            Status::invalid_argument(format!(
                "request message larger than the limit of {max} bytes once decompressed"
            ))
        })?
    } else {
        framed.slice(5..)
    };
    drop(framed);
    let permit = ingest
        .admission()
        .admit(reserved, crate::prescan::protobuf(&message), message.len())
        .await
        .map_err(refused)?;
    parts
        .extensions
        .insert(Reservation(Arc::new(Mutex::new(Some(permit)))));
    let mut out = BytesMut::with_capacity(message.len() + 5);
    out.extend_from_slice(&[0]);
    out.extend_from_slice(
        &u32::try_from(message.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(&message);
    drop(message);
    let body = Body::new(http_body_util::Full::new(out.freeze()));
    Ok(Request::from_parts(parts, body))
}

/// The message of a body holding exactly one length-prefixed message.
fn one_message(framed: &Bytes) -> Result<&[u8], Status> {
    if framed.len() < 5 || framed[0] > 1 {
        return Err(Status::invalid_argument(
            "the request is not one length-prefixed gRPC message",
        ));
    }
    let len = u32::from_be_bytes([framed[1], framed[2], framed[3], framed[4]]) as usize;
    if framed.len() - 5 != len {
        return Err(Status::invalid_argument(
            "the request is not exactly one length-prefixed gRPC message",
        ));
    }
    Ok(&framed[5..])
}

/// Inflates at most `max` bytes; `None` when the message is larger (a gzip bomb stops
/// after `max` bytes of work).
fn gunzip(compressed: &[u8], max: usize) -> Result<Option<Bytes>, Status> {
    let mut out = Vec::with_capacity((compressed.len() * 4).min(max));
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::GzDecoder::new(compressed)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| Status::invalid_argument(format!("invalid gzip message: {e}")))?;
    Ok((out.len() <= max).then(|| Bytes::from(out)))
}
