//! PostgreSQL crashed, restarted, frozen and thawed under continuous OTLP ingest: every
//! request is answered within a bound (stored, or told to retry), the receivers recover
//! without a restart, every acknowledged span is stored, and the summaries then equal
//! an aggregation of the spans.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use opentelemetry_proto::tonic::trace::v1::Span;
use otlp::{IngestConfig, Options};
use prost::Message;
use store::embedded::{EmbeddedCluster, EmbeddedOptions};
use tokio::sync::{watch, Mutex};

/// How long any request may take to be answered: the write timeout for a connection,
/// then for the COPY, and slack for a loaded machine.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
const ANSWER_BOUND: Duration = Duration::from_secs(15);
const SPANS_PER_REQUEST: u8 = 5;

/// Request `n` of sender `sender`: its own trace of [`SPANS_PER_REQUEST`] spans.
fn spans_of(sender: u8, n: u32) -> (String, Vec<Span>) {
    let mut trace = [0x33u8; 16];
    trace[0] = sender;
    trace[12..].copy_from_slice(&n.to_be_bytes());
    let spans = (1..=SPANS_PER_REQUEST)
        .map(|i| {
            let mut sp = span(1, i, &format!("s{sender}-{n}-{i}"));
            sp.trace_id = trace.to_vec();
            sp
        })
        .collect();
    (otlp::convert::hex(&trace), spans)
}

#[derive(Default)]
struct Tally {
    /// Trace ids of acknowledged requests.
    acked: Vec<String>,
    /// What happened when, for the failure message.
    log: Vec<String>,
    /// Requests told to retry (UNAVAILABLE / 503, RESOURCE_EXHAUSTED / 429).
    retry: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_restart_freeze_thaw_lose_no_acknowledged_span() {
    let dir = std::env::temp_dir().join(format!("srql-otlp-faults-{}", std::process::id()));
    let mut opts = EmbeddedOptions::new(&dir);
    // Durable: a throwaway cluster runs with synchronous_commit off, where a crash may
    // lose commits already acknowledged, which is what this test looks for.
    opts.durable = true;
    opts.remove_on_stop = true;
    opts.pg_cron = false;
    let mut cluster = EmbeddedCluster::start(&opts).expect("embedded cluster");
    let url = cluster.url("postgres");
    store::setup::run(&url, &store::summaries::SummaryConfig::default(), false)
        .await
        .expect("migrate");

    let writers = 2;
    let pool = store::db::pool(&url, writers + 1).expect("pool");
    let (stop, stop_rx) = watch::channel(false);
    let receivers = otlp::start(
        pool,
        Options {
            grpc_listen: Some("127.0.0.1:0".into()),
            http_listen: None,
            ingest: IngestConfig {
                writers,
                write_timeout: WRITE_TIMEOUT,
                ..IngestConfig::default()
            },
            ..Options::default()
        },
        stop_rx,
    )
    .await
    .expect("receivers");
    let grpc = format!("http://{}", receivers.grpc_addr.expect("grpc"));
    let router = otlp::http::router(receivers.ingest().clone(), otlp::DEFAULT_MAX_REQUEST_BYTES);

    let tally = Arc::new(Mutex::new(Tally::default()));
    let started = std::time::Instant::now();
    let sending = Arc::new(AtomicBool::new(true));
    let mut senders = Vec::new();
    // Two over gRPC, one over HTTP.
    for sender in 0..3u8 {
        let (tally, sending, router, grpc) =
            (tally.clone(), sending.clone(), router.clone(), grpc.clone());
        senders.push(tokio::spawn(async move {
            let mut client = srql_bench::otlp_export::connect(&grpc)
                .await
                .expect("grpc client");
            let mut n = 0u32;
            while sending.load(Ordering::Relaxed) {
                n += 1;
                let (trace, spans) = spans_of(sender, n);
                let acked = if sender < 2 {
                    let answer = tokio::time::timeout(ANSWER_BOUND, client.export(request(spans)))
                        .await
                        .unwrap_or_else(|_| {
                            panic!("gRPC request {n} unanswered after {ANSWER_BOUND:?}")
                        });
                    match answer {
                        Ok(resp) => {
                            assert!(resp.into_inner().partial_success.is_none());
                            true
                        }
                        Err(s)
                            if matches!(
                                s.code(),
                                tonic::Code::Unavailable | tonic::Code::ResourceExhausted
                            ) =>
                        {
                            assert!(
                                !s.message().contains("SQLSTATE")
                                    && !s.message().contains("db error"),
                                "the database's own error leaked: {}",
                                s.message()
                            );
                            false
                        }
                        Err(s) => panic!("gRPC request {n}: unexpected {s:?}"),
                    }
                } else {
                    let body = request(spans).encode_to_vec();
                    let out = tokio::time::timeout(
                        ANSWER_BOUND,
                        http_post(&router, "application/x-protobuf", None, body),
                    )
                    .await
                    .unwrap_or_else(|_| {
                        panic!("HTTP request {n} unanswered after {ANSWER_BOUND:?}")
                    });
                    match out.status {
                        StatusCode::OK => true,
                        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
                            assert!(out.headers.contains_key("retry-after"));
                            false
                        }
                        other => panic!("HTTP request {n}: unexpected {other}"),
                    }
                };
                let mut t = tally.lock().await;
                if acked {
                    t.acked.push(trace.clone());
                    t.log.push(format!("{:?} ack {trace}", started.elapsed()));
                } else {
                    t.retry += 1;
                }
                drop(t);
                if !acked {
                    // As exporters do: back off a little before the next try.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }));
    }
    let acked_now = || async { tally.lock().await.acked.len() };
    let wait_for_acks = |more: usize, what: &'static str| {
        let tally = tally.clone();
        async move {
            let from = tally.lock().await.acked.len();
            tokio::time::timeout(Duration::from_secs(60), async {
                while tally.lock().await.acked.len() < from + more {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
            .await
            .unwrap_or_else(|_| panic!("no recovery {what}: the service did not store again"));
        }
    };

    wait_for_acks(5, "at start").await;
    tally
        .lock()
        .await
        .log
        .push(format!("{:?} crash", started.elapsed()));
    cluster.crash().expect("crash");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let retries_while_down = tally.lock().await.retry;
    assert!(
        retries_while_down > 0,
        "requests were refused while the database was down"
    );
    tally
        .lock()
        .await
        .log
        .push(format!("{:?} start_again", started.elapsed()));
    cluster.start_again().expect("start again");
    wait_for_acks(5, "after the restart").await;

    tally
        .lock()
        .await
        .log
        .push(format!("{:?} freeze", started.elapsed()));
    cluster.freeze().expect("freeze");
    let before_freeze = acked_now().await;
    tokio::time::sleep(WRITE_TIMEOUT * 3).await;
    let retries_frozen = tally.lock().await.retry - retries_while_down;
    tally
        .lock()
        .await
        .log
        .push(format!("{:?} thaw", started.elapsed()));
    cluster.thaw().expect("thaw");
    assert!(
        retries_frozen > 0,
        "requests were refused while the database was frozen"
    );
    assert!(
        acked_now().await <= before_freeze + 3,
        "at most the requests in flight were stored while frozen"
    );
    wait_for_acks(5, "after the thaw").await;

    sending.store(false, Ordering::Relaxed);
    for s in senders {
        s.await.expect("sender");
    }
    let _ = stop.send(true);
    receivers.stopped().await;

    // Every acknowledged request's spans are stored.
    let client = store::db::connect(&url).await.expect("connect");
    let acked = std::mem::take(&mut tally.lock().await.acked);
    let log = tally.lock().await.log.join("\n");
    let stored: i64 = client
        .query_one(
            "SELECT count(*) FROM otel_traces WHERE trace_id = ANY($1)",
            &[&acked],
        )
        .await
        .expect("count")
        .get(0);
    assert!(
        stored >= acked.len() as i64 * i64::from(SPANS_PER_REQUEST),
        "{stored} spans stored for {} acknowledged requests; missing: {:?}\n{log}",
        acked.len(),
        client
            .query(
                "SELECT a.t FROM unnest($1::text[]) a(t)
                 WHERE NOT EXISTS (SELECT 1 FROM otel_traces WHERE trace_id = a.t)",
                &[&acked]
            )
            .await
            .expect("missing")
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    );
    let missing: i64 = client
        .query_one(
            "SELECT count(*) FROM unnest($1::text[]) a(t)
             WHERE (SELECT count(DISTINCT span_id) FROM otel_traces WHERE trace_id = a.t) <> $2",
            &[&acked, &i64::from(SPANS_PER_REQUEST)],
        )
        .await
        .expect("missing")
        .get(0);
    assert_eq!(
        missing, 0,
        "acknowledged requests with spans missing\n{log}"
    );

    // The summaries, refreshed after all this, equal the spans aggregated now.
    store::summaries::refresh(&client, store::summaries::RefreshMethod::Full)
        .await
        .expect("refresh");
    let rows = |select: String| {
        let client = &client;
        async move {
            client
                .query(
                    &format!("SELECT t::text FROM ({select}) t ORDER BY t.trace_id"),
                    &[],
                )
                .await
                .expect("rows")
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>()
        }
    };
    let window = store::summaries::SummaryConfig::default()
        .window
        .num_seconds();
    let summaries = rows("SELECT * FROM otel_trace_summaries".into()).await;
    let aggregated = rows(srql_plan::summary_sql::materialized_view_query(window)).await;
    assert_eq!(summaries.len(), aggregated.len());
    assert!(
        summaries == aggregated,
        "summaries differ from the spans aggregated"
    );
    assert!(summaries.len() >= acked.len());
    drop(client);
    cluster.stop().expect("stop");
}
