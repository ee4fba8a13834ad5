//! The generated workload as OTLP requests, and a sender that streams a whole workload
//! to a receiver over gRPC. Used by `srql generate --via-otlp`, the OTLP ingest benchmark
//! and the soak test; the receivers never need it, so it lives outside `otlp`.

use std::collections::HashMap;
use std::time::Duration;

use crate::otlp_export::{connect, export, ClientError};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

/// Spans per request that `srql generate --via-otlp` and the benchmark send.
pub const BATCH_SPANS: usize = 512;

/// Why sending the workload failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("workload span is not valid OTLP: {0}")]
    Workload(String),
}

/// The workload's spans as one OTLP request, grouped by resource and scope as an SDK
/// would send them. `service.instance.id` is added to the resource attributes (the
/// workload keeps the instance beside them), so the receiver maps every column back.
pub fn workload_request(spans: &[workload::Span]) -> Result<ExportTraceServiceRequest, SendError> {
    let mut resources: Vec<ResourceSpans> = Vec::new();
    let mut resource_index: HashMap<(&str, &str), usize> = HashMap::new();
    let mut scope_index: HashMap<(usize, &str, &str), usize> = HashMap::new();
    for s in spans {
        let instance = s.resource.service_instance.as_deref().unwrap_or_default();
        let r = match resource_index.get(&(s.resource.attributes.as_str(), instance)) {
            Some(r) => *r,
            None => {
                let mut attributes = json_object(&s.resource.attributes)?;
                if !attributes.iter().any(|kv| kv.key == "service.instance.id") {
                    attributes.push(string_kv("service.instance.id", instance));
                }
                resources.push(ResourceSpans {
                    resource: Some(Resource {
                        attributes,
                        dropped_attributes_count: 0,
                        entity_refs: Vec::new(),
                    }),
                    scope_spans: Vec::new(),
                    schema_url: String::new(),
                });
                let r = resources.len() - 1;
                resource_index.insert((&s.resource.attributes, instance), r);
                r
            }
        };
        let scopes = &mut resources[r].scope_spans;
        let sc = *scope_index
            .entry((r, s.scope.name.as_str(), s.scope.version.as_str()))
            .or_insert_with(|| {
                scopes.push(ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: s.scope.name.clone(),
                        version: s.scope.version.clone(),
                        attributes: Vec::new(),
                        dropped_attributes_count: 0,
                    }),
                    spans: Vec::new(),
                    schema_url: String::new(),
                });
                scopes.len() - 1
            });
        scopes[sc].spans.push(workload_span(s)?);
    }
    Ok(ExportTraceServiceRequest {
        resource_spans: resources,
    })
}

fn workload_span(s: &workload::Span) -> Result<Span, SendError> {
    let bad = |what: &str, e: String| SendError::Workload(format!("{what}: {e}"));
    let events = match serde_json::from_str::<serde_json::Value>(&s.events) {
        Ok(serde_json::Value::Array(items)) => items
            .iter()
            .map(|e| Event {
                time_unix_nano: e["time_unix_nano"].as_u64().unwrap_or(0),
                name: e["name"].as_str().unwrap_or("").to_string(),
                attributes: e["attributes"]
                    .as_object()
                    .map(object_kvs)
                    .unwrap_or_default(),
                dropped_attributes_count: 0,
            })
            .collect(),
        Ok(other) => return Err(bad("events", format!("not an array: {other}"))),
        Err(e) => return Err(bad("events", e.to_string())),
    };
    let links = match serde_json::from_str::<serde_json::Value>(&s.links) {
        Ok(serde_json::Value::Array(items)) => items
            .iter()
            .map(|l| {
                Ok(Link {
                    trace_id: unhex(l["trace_id"].as_str().unwrap_or(""))
                        .map_err(|e| bad("link trace_id", e))?,
                    span_id: unhex(l["span_id"].as_str().unwrap_or(""))
                        .map_err(|e| bad("link span_id", e))?,
                    trace_state: String::new(),
                    attributes: l["attributes"]
                        .as_object()
                        .map(object_kvs)
                        .unwrap_or_default(),
                    dropped_attributes_count: 0,
                    flags: 0,
                })
            })
            .collect::<Result<_, SendError>>()?,
        Ok(other) => return Err(bad("links", format!("not an array: {other}"))),
        Err(e) => return Err(bad("links", e.to_string())),
    };
    Ok(Span {
        trace_id: unhex(&s.trace_id).map_err(|e| bad("trace_id", e))?,
        span_id: unhex(&s.span_id).map_err(|e| bad("span_id", e))?,
        trace_state: String::new(),
        parent_span_id: unhex(&s.parent_span_id).map_err(|e| bad("parent_span_id", e))?,
        flags: 0,
        name: s.name.clone(),
        kind: s.kind,
        start_time_unix_nano: u64::try_from(s.start_time_unix_nano).unwrap_or(0),
        end_time_unix_nano: u64::try_from(s.end_time_unix_nano).unwrap_or(0),
        attributes: json_object(&s.attributes)?,
        dropped_attributes_count: 0,
        events,
        dropped_events_count: 0,
        links,
        dropped_links_count: 0,
        status: Some(Status {
            message: s.status_message.clone(),
            code: s.status_code,
        }),
    })
}

fn json_object(text: &str) -> Result<Vec<KeyValue>, SendError> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(m)) => Ok(object_kvs(&m)),
        Ok(other) => Err(SendError::Workload(format!(
            "attributes are not an object: {other}"
        ))),
        Err(e) => Err(SendError::Workload(format!("attributes: {e}"))),
    }
}

fn object_kvs(m: &serde_json::Map<String, serde_json::Value>) -> Vec<KeyValue> {
    m.iter()
        .map(|(k, v)| KeyValue {
            key: k.clone(),
            value: Some(any_value(v)),
            key_strindex: 0,
        })
        .collect()
}

fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.to_string())),
        }),
        key_strindex: 0,
    }
}

/// JSON to AnyValue, the inverse of the receiver's mapping.
fn any_value(v: &serde_json::Value) -> AnyValue {
    use serde_json::Value as J;
    let value = match v {
        J::Null => None,
        J::Bool(b) => Some(Value::BoolValue(*b)),
        J::Number(n) => Some(match n.as_i64() {
            Some(i) => Value::IntValue(i),
            None => Value::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        }),
        J::String(s) => Some(Value::StringValue(s.clone())),
        J::Array(items) => Some(Value::ArrayValue(ArrayValue {
            values: items.iter().map(any_value).collect(),
        })),
        J::Object(m) => Some(Value::KvlistValue(KeyValueList {
            values: object_kvs(m),
        })),
    };
    AnyValue { value }
}

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{s:?} is not hex"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| e.to_string()))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SendReport {
    pub spans: u64,
    pub requests: u64,
    pub elapsed: Duration,
}

impl SendReport {
    pub fn spans_per_sec(&self) -> f64 {
        self.spans as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Generates `config` and sends it to `endpoint` over OTLP/gRPC in requests of
/// [`BATCH_SPANS`] spans, `concurrency` requests in flight. `progress` gets the running
/// count of acknowledged spans.
pub async fn send_workload(
    endpoint: &str,
    config: workload::WorkloadConfig,
    concurrency: usize,
    progress: impl Fn(u64) + Send + Sync + 'static,
) -> Result<SendReport, SendError> {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::sync::Arc;

    let started = std::time::Instant::now();
    let client = connect(endpoint).await?;
    // Generation and encoding run on their own thread and feed a small queue, as in the
    // COPY loader, so the senders never wait for the generator while it has work.
    let (tx, rx) = tokio::sync::mpsc::channel::<(u64, ExportTraceServiceRequest)>(concurrency * 2);
    let generator = std::thread::spawn(move || -> Result<(), SendError> {
        let mut buf: Vec<workload::Span> = Vec::with_capacity(BATCH_SPANS * 2);
        let send = |spans: &[workload::Span]| -> Result<bool, SendError> {
            let req = workload_request(spans)?;
            Ok(tx.blocking_send((spans.len() as u64, req)).is_ok())
        };
        for trace in workload::Generator::new(config) {
            buf.extend(trace.spans);
            while buf.len() >= BATCH_SPANS {
                if !send(&buf[..BATCH_SPANS])? {
                    return Ok(());
                }
                buf.drain(..BATCH_SPANS);
            }
        }
        if !buf.is_empty() {
            send(&buf)?;
        }
        Ok(())
    });
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let sent = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(progress);
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let mut client = client.clone();
        let (rx, sent, requests, progress) =
            (rx.clone(), sent.clone(), requests.clone(), progress.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let next = rx.lock().await.recv().await;
                let Some((n, req)) = next else { break };
                export(&mut client, req, 100).await?;
                requests.fetch_add(1, Relaxed);
                progress(sent.fetch_add(n, Relaxed) + n);
            }
            Ok::<(), SendError>(())
        }));
    }
    let mut first_error = None;
    for t in tasks {
        let r = t
            .await
            .map_err(|e| SendError::Workload(format!("sender task: {e}")))
            .and_then(|r| r);
        if let Err(e) = r {
            first_error.get_or_insert(e);
            // The others stop when the queue closes.
            rx.lock().await.close();
        }
    }
    let generated = generator
        .join()
        .map_err(|_| SendError::Workload("the generator thread panicked".into()))?;
    if let Some(e) = first_error {
        return Err(e);
    }
    generated?;
    Ok(SendReport {
        spans: sent.load(Relaxed),
        requests: requests.load(Relaxed),
        elapsed: started.elapsed(),
    })
}
