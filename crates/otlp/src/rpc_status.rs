//! `google.rpc.Status` and `google.rpc.RetryInfo`, the error payloads OTLP uses: the
//! body of an OTLP/HTTP error response, and the details of a gRPC RESOURCE_EXHAUSTED
//! that tell the client when to retry. Two small messages, written out here rather
//! than pulling in a crate of all Google API types.

use std::time::Duration;

use prost::Message;

/// `google.rpc.Status`.
#[derive(Clone, PartialEq, Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<ProtoAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, Message)]
pub struct ProtoAny {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, Message)]
pub struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, Message)]
pub struct ProtoDuration {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl RetryInfo {
    pub fn after(delay: Duration) -> Self {
        RetryInfo {
            retry_delay: Some(ProtoDuration {
                seconds: i64::try_from(delay.as_secs()).unwrap_or(i64::MAX),
                // Below one billion, so it fits.
                nanos: i32::try_from(delay.subsec_nanos()).unwrap_or(0),
            }),
        }
    }
}

pub const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

impl RpcStatus {
    pub fn new(code: tonic::Code, message: impl Into<String>) -> Self {
        RpcStatus {
            code: code as i32,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// Adds a `RetryInfo` detail: retry after `delay`.
    pub fn with_retry_after(mut self, delay: Duration) -> Self {
        self.details.push(ProtoAny {
            type_url: RETRY_INFO_TYPE.into(),
            value: RetryInfo::after(delay).encode_to_vec(),
        });
        self
    }

    /// The retry delay of a `RetryInfo` detail, if there is one.
    pub fn retry_after(&self) -> Option<Duration> {
        let any = self
            .details
            .iter()
            .find(|d| d.type_url == RETRY_INFO_TYPE)?;
        let d = RetryInfo::decode(any.value.as_slice()).ok()?.retry_delay?;
        Some(Duration::new(
            u64::try_from(d.seconds).ok()?,
            u32::try_from(d.nanos).ok()?,
        ))
    }

    /// The JSON form, for OTLP/HTTP JSON clients (protobuf JSON mapping: `details` as
    /// `Any` with `@type`; RetryInfo's duration as a string like `"1s"`).
    pub fn to_json(&self) -> serde_json::Value {
        let details: Vec<serde_json::Value> = self
            .details
            .iter()
            .map(|d| {
                if d.type_url == RETRY_INFO_TYPE {
                    if let Some(delay) = self.retry_after() {
                        return serde_json::json!({
                            "@type": RETRY_INFO_TYPE,
                            "retryDelay": format!("{}s", delay.as_secs_f64()),
                        });
                    }
                }
                serde_json::json!({ "@type": d.type_url })
            })
            .collect();
        let mut v = serde_json::json!({ "code": self.code, "message": self.message });
        if !details.is_empty() {
            v["details"] = serde_json::Value::Array(details);
        }
        v
    }
}
