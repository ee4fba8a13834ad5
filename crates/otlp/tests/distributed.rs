//! OTLP ingest in distributed mode: the receivers write through the Citus coordinator
//! (the test cluster of `store::distributed_testing`) as the writer login, and every
//! span reaches its trace's summary row after a drain on the shards.

mod common;

use chrono::Duration;
use common::{request, span, span_id};
use store::distributed::Distribution;
use store::distributed_testing::CitusTestDb;
use store::summaries::{Maintenance, RefreshMethod, RunOutcome, SummaryConfig, SummaryMode};
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_spans_through_the_coordinator_reach_their_summaries() {
    let db = CitusTestDb::empty().await;
    store::setup::run_distributed(
        &db.url,
        &SummaryConfig {
            window: Duration::days(7),
            retention: Duration::days(7),
            refresh_interval: Duration::minutes(2),
        },
        &Maintenance {
            mode: SummaryMode::Incremental,
            drain_interval: Duration::seconds(1),
        },
        false,
        &mut |_| {},
        Some(Distribution::Citus),
    )
    .await
    .expect("distributed migrate");
    let pool = store::db::pool(&db.writer_url(), 3).expect("writer pool");
    let (stop, stop_rx) = watch::channel(false);
    let receivers = otlp::start(
        pool,
        otlp::Options {
            grpc_listen: Some("127.0.0.1:0".into()),
            http_listen: None,
            ..otlp::Options::default()
        },
        stop_rx,
    )
    .await
    .expect("receivers start");
    let addr = receivers.grpc_addr.expect("grpc address");
    let mut client = srql_bench::otlp_export::connect(&format!("http://{addr}"))
        .await
        .expect("grpc client connects");

    // Four traces of five spans (span 0 the root), split over two exports so that
    // traces straddle them.
    let mut spans = Vec::new();
    for t in 1..=4u8 {
        for n in 0..5u8 {
            let mut s = span(t, t * 10 + n, &format!("op{n}"));
            if n > 0 {
                s.parent_span_id = span_id(t * 10).to_vec();
            }
            spans.push(s);
        }
    }
    for part in [&spans[..7], &spans[7..]] {
        client
            .export(request(part.to_vec()))
            .await
            .expect("export accepted");
    }
    // Shutdown writes whatever the queue still holds before it returns.
    let _ = stop.send(true);
    tokio::time::timeout(std::time::Duration::from_secs(30), receivers.stopped())
        .await
        .expect("receivers stop within 30 s");

    let sql = db.client().await;
    let stored: i64 = sql
        .query_one("SELECT count(*) FROM otel_traces", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 20, "every span stored");
    let run = store::summaries::refresh(&sql, RefreshMethod::Concurrently)
        .await
        .expect("drain");
    assert_eq!(run.outcome, RunOutcome::Ok, "{run:?}");
    let rows: Vec<(i64, String, Vec<String>)> = sql
        .query(
            "SELECT span_count, root_span_name, service_set FROM otel_trace_summaries
             ORDER BY trace_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let want = (5, "op0".to_string(), vec!["svc-test".to_string()]);
    assert_eq!(rows, vec![want; 4]);
}
