//! How the OTLP/gRPC receiver answers what it refuses, shared by the admission layer
//! (which refuses before tonic decodes) and the handler (which refuses after), so both
//! give clients the same codes and retry hints.

use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

use crate::auth::Token;
use crate::pipeline::IngestError;
use crate::rpc_status::{RetryInfo, RpcStatus};

/// UNAUTHENTICATED (final: OTLP clients do not retry it) unless the token matches.
pub(crate) fn authenticate(
    token: Option<&Token>,
    headers: &axum::http::HeaderMap,
) -> Result<(), Status> {
    let Some(token) = token else {
        return Ok(());
    };
    token
        .check(headers.get("authorization").map(|v| v.as_bytes()))
        .map_err(|refusal| {
            tracing::warn!(reason = %refusal, "OTLP/gRPC request refused");
            Status::unauthenticated(refusal.to_string())
        })
}

/// OTLP/gRPC's mapping of our failures: RESOURCE_EXHAUSTED with RetryInfo for a full
/// queue (retryable, at the given delay), UNAVAILABLE for database trouble (retryable),
/// INVALID_ARGUMENT for data the database refused (not retryable).
pub(crate) fn to_status(e: &IngestError) -> Status {
    match e {
        IngestError::Busy { retry_after } => {
            let details = RpcStatus::new(Code::ResourceExhausted, e.to_string())
                .with_retry_after(*retry_after)
                .encode_to_vec();
            let mut status =
                Status::with_details(Code::ResourceExhausted, e.to_string(), details.into());
            // Clients differ in where they look for the delay: the status details
            // (grpc-status-details-bin; Go, the Collector) or this trailer of its own
            // (the Python SDK).
            status.metadata_mut().insert_bin(
                RETRY_INFO_TRAILER,
                MetadataValue::from_bytes(&RetryInfo::after(*retry_after).encode_to_vec()),
            );
            status
        }
        IngestError::ShuttingDown | IngestError::Unavailable(_) => {
            Status::unavailable(e.to_string())
        }
        IngestError::Refused(_) => Status::invalid_argument(e.to_string()),
    }
}

/// The trailer carrying a bare `google.rpc.RetryInfo`.
pub const RETRY_INFO_TRAILER: &str = "google.rpc.retryinfo-bin";
