//! A gRPC client for the receivers that honours their back-pressure: connect, export with
//! retries, and how long a refusal asks the client to wait. `otlp_client` sends the
//! workload on it; the receivers' tests use it as a client would.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use otlp::rpc_status::RpcStatus;
use tonic::transport::Channel;
use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid OTLP endpoint {endpoint:?}: {message}")]
    Endpoint { endpoint: String, message: String },
    #[error("cannot connect to the OTLP endpoint {endpoint}: {source}")]
    Connect {
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("export failed: {0}")]
    Export(tonic::Status),
    #[error("the receiver rejected {rejected} spans: {message}")]
    Rejected { rejected: i64, message: String },
}

/// A gRPC channel to `endpoint` (`http://host:port`, or bare `host:port`).
pub async fn connect(endpoint: &str) -> Result<TraceServiceClient<Channel>, ClientError> {
    let uri = if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    };
    let channel = Channel::from_shared(uri)
        .map_err(|e| ClientError::Endpoint {
            endpoint: endpoint.to_string(),
            message: e.to_string(),
        })?
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|source| ClientError::Connect {
            endpoint: endpoint.to_string(),
            source,
        })?;
    Ok(TraceServiceClient::new(channel).max_decoding_message_size(64 * 1024 * 1024))
}

/// Sends one request, retrying while the receiver says "later" (RESOURCE_EXHAUSTED with
/// a retry delay, or UNAVAILABLE), at most `max_attempts` times. Rejected spans are an
/// error: the callers send only valid spans.
pub async fn export(
    client: &mut TraceServiceClient<Channel>,
    request: ExportTraceServiceRequest,
    max_attempts: u32,
) -> Result<(), ClientError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match client.export(request.clone()).await {
            Ok(resp) => {
                if let Some(p) = resp.into_inner().partial_success {
                    if p.rejected_spans > 0 {
                        return Err(ClientError::Rejected {
                            rejected: p.rejected_spans,
                            message: p.error_message,
                        });
                    }
                }
                return Ok(());
            }
            Err(status) if attempt < max_attempts => {
                let Some(delay) = retry_delay(&status) else {
                    return Err(ClientError::Export(status));
                };
                tokio::time::sleep(delay).await;
            }
            Err(status) => return Err(ClientError::Export(status)),
        }
    }
}

/// How long to wait before retrying `status`, or `None` if it is final.
pub fn retry_delay(status: &tonic::Status) -> Option<Duration> {
    match status.code() {
        Code::ResourceExhausted => {
            use prost::Message;
            // OTLP: RESOURCE_EXHAUSTED is retryable only with RetryInfo.
            RpcStatus::decode(status.details())
                .ok()
                .and_then(|s| s.retry_after())
        }
        Code::Unavailable => Some(Duration::from_millis(200)),
        _ => None,
    }
}
