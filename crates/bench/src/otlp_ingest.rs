//! Ingest throughput: the generated workload sent over OTLP/gRPC in requests of 512
//! spans by several concurrent clients, each on its own connection, to the real receiver
//! and write path, into a scratch database on the same server. Requests are generated and
//! protobuf-encoded before the clock starts (real clients encode on their own machines),
//! so the figure is the receiver's: HTTP/2, decode, map, queue, COPY, commit, with
//! PostgreSQL on the same machine.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes};
use chrono::Utc;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tokio::sync::watch;
use tokio_postgres::NoTls;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;

use crate::otlp_export::retry_delay;
use otlp::{IngestConfig, IngestStats, Options};

use crate::otlp_client::{workload_request, BATCH_SPANS};

/// The scratch database; dropped and recreated by every run. Never the service's own.
pub const BENCH_DATABASE: &str = "srql_bench_otlp";

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub spans: u64,
    pub clients: usize,
    pub writers: usize,
    pub seed: u64,
}

#[derive(Debug, Clone)]
pub struct BenchReport {
    pub spans: u64,
    pub requests: u64,
    pub clients: usize,
    pub writers: usize,
    pub elapsed: Duration,
    /// Rows found in `otel_traces` afterwards: must equal `spans`.
    pub rows: i64,
    pub stats: IngestStats,
}

impl BenchReport {
    pub fn spans_per_sec(&self) -> f64 {
        self.spans as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs the benchmark against a scratch database on the server of `url`.
pub async fn run(url: &str, opts: &BenchOptions) -> Result<BenchReport, String> {
    let admin = store::db::connect(url).await.map_err(|e| e.to_string())?;
    // BENCH_DATABASE is our constant, not input. Two statements: neither may run in the
    // implicit transaction of a multi-statement string.
    for sql in [
        format!("DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)"),
        format!("CREATE DATABASE {BENCH_DATABASE}"),
    ] {
        admin.batch_execute(&sql).await.map_err(|e| {
            format!(
                "cannot create the scratch database {BENCH_DATABASE}: {}",
                store::DbError::from(e)
            )
        })?;
    }
    let result = run_in(url, opts).await;
    if let Err(e) = admin
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)"
        ))
        .await
    {
        let e = store::DbError::from(e);
        tracing::warn!(error = %e, "cannot drop the scratch database {BENCH_DATABASE}");
    }
    result
}

async fn run_in(url: &str, opts: &BenchOptions) -> Result<BenchReport, String> {
    let config = store::db::url_for_database(url, BENCH_DATABASE).map_err(|e| e.to_string())?;
    let (mut client, conn) = config.connect(NoTls).await.map_err(|e| {
        format!(
            "cannot connect to {BENCH_DATABASE}: {}",
            store::DbError::from(e)
        )
    })?;
    tokio::spawn(conn);
    store::migrate::run(&mut client)
        .await
        .map_err(|e| e.to_string())?;
    send(config, &client, opts).await
}

/// Sends the workload to receivers writing into the database of `config`, already set
/// up and holding no spans (`client` is connected to it), and checks every span landed.
pub async fn send(
    config: tokio_postgres::Config,
    client: &tokio_postgres::Client,
    opts: &BenchOptions,
) -> Result<BenchReport, String> {
    let end = Utc::now();
    let start = end - chrono::Duration::days(7);
    store::partitions::ensure(client, start, end + chrono::Duration::days(1))
        .await
        .map_err(|e| e.to_string())?;

    let requests = build_requests(opts, start, end)?;
    let total_spans: u64 = requests.iter().map(|(n, _)| *n).sum();
    let request_count = requests.len() as u64;
    // A queue the clients take requests from.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for r in requests {
        let _ = tx.send(r);
    }
    drop(tx);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));

    let mut config = config;
    config.application_name("srql-bench-otlp");
    let pool = store::db::pool_for(config, opts.writers + 1).map_err(|e| e.to_string())?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let receivers = otlp::start(
        pool,
        Options {
            grpc_listen: Some("127.0.0.1:0".into()),
            http_listen: None,
            ingest: IngestConfig {
                writers: opts.writers.max(1),
                ..IngestConfig::default()
            },
            ..Options::default()
        },
        stop_rx,
    )
    .await
    .map_err(|e| e.to_string())?;
    let endpoint = receivers
        .grpc_addr
        .map(|a| format!("http://{a}"))
        .ok_or("the gRPC receiver did not start")?;

    let mut clients = Vec::new();
    for _ in 0..opts.clients.max(1) {
        let channel = tonic::transport::Channel::from_shared(endpoint.clone())
            .map_err(|e| e.to_string())?
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {endpoint}: {e}"))?;
        clients.push(tonic::client::Grpc::new(channel));
    }
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut c in clients {
        let (rx, sent) = (rx.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let next = rx.lock().await.recv().await;
                let Some((n, body)) = next else {
                    return Ok::<(), String>(());
                };
                // Retried as a real client would when told to wait (a full queue);
                // resending costs nothing, the body is shared.
                let mut attempts = 0;
                let resp = loop {
                    attempts += 1;
                    c.ready().await.map_err(|e| e.to_string())?;
                    let sent = c
                        .unary(
                            tonic::Request::new(body.clone()),
                            PathAndQuery::from_static(EXPORT_PATH),
                            PreEncoded,
                        )
                        .await;
                    match sent {
                        Ok(resp) => break resp,
                        Err(status) => match retry_delay(&status) {
                            Some(delay) if attempts < 1000 => tokio::time::sleep(delay).await,
                            _ => return Err(status.to_string()),
                        },
                    }
                };
                if let Some(p) = resp.into_inner().partial_success {
                    if p.rejected_spans > 0 {
                        return Err(format!(
                            "{} spans rejected: {}",
                            p.rejected_spans, p.error_message
                        ));
                    }
                }
                sent.fetch_add(n, Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let elapsed = started.elapsed();
    let stats = receivers.ingest().stats();
    let _ = stop_tx.send(true);
    receivers.stopped().await;

    let rows: i64 = client
        .query_one("SELECT count(*) FROM otel_traces", &[])
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    if rows != i64::try_from(total_spans).unwrap_or(i64::MAX) {
        return Err(format!(
            "sent {total_spans} spans but {rows} rows are stored"
        ));
    }
    Ok(BenchReport {
        spans: sent.load(Relaxed),
        requests: request_count,
        clients: opts.clients.max(1),
        writers: opts.writers.max(1),
        elapsed,
        rows,
        stats,
    })
}

/// The workload as encoded Export requests of [`BATCH_SPANS`] spans, with their span
/// counts.
fn build_requests(
    opts: &BenchOptions,
    start: chrono::DateTime<Utc>,
    end: chrono::DateTime<Utc>,
) -> Result<Vec<(u64, Bytes)>, String> {
    let config = workload::WorkloadConfig::for_spans(opts.seed, opts.spans, start, end);
    let mut out = Vec::new();
    let mut buf: Vec<workload::Span> = Vec::with_capacity(BATCH_SPANS * 2);
    for trace in workload::Generator::new(config) {
        buf.extend(trace.spans);
        while buf.len() >= BATCH_SPANS {
            let req = workload_request(&buf[..BATCH_SPANS]).map_err(|e| e.to_string())?;
            out.push((BATCH_SPANS as u64, req.encode_to_vec().into()));
            buf.drain(..BATCH_SPANS);
        }
    }
    if !buf.is_empty() {
        let req = workload_request(&buf).map_err(|e| e.to_string())?;
        out.push((buf.len() as u64, req.encode_to_vec().into()));
    }
    Ok(out)
}

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// A gRPC codec that sends already-encoded requests as they are and decodes the Export
/// response.
#[derive(Clone, Copy)]
struct PreEncoded;

impl Codec for PreEncoded {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = PreEncoded;
    type Decoder = PreEncoded;

    fn encoder(&mut self) -> Self::Encoder {
        PreEncoded
    }

    fn decoder(&mut self) -> Self::Decoder {
        PreEncoded
    }
}

impl Encoder for PreEncoded {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for PreEncoded {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut DecodeBuf<'_>,
    ) -> Result<Option<ExportTraceServiceResponse>, tonic::Status> {
        ExportTraceServiceResponse::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(format!("bad Export response: {e}")))
    }
}
