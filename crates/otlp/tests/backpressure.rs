//! The write path under a database that does not keep up: requests are coalesced, a
//! full queue is refused with the protocol's "retry later", nothing acknowledged is
//! lost, and shutdown drains what was accepted.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use otlp::rpc_status::RpcStatus;
use otlp::IngestConfig;
use prost::Message;

/// One writer, room for one waiting request: with the writer stuck on a locked table
/// and one request queued, the next is refused.
fn tiny_queue() -> IngestConfig {
    IngestConfig {
        max_queued_requests: 1,
        writers: 1,
        retry_after: Duration::from_secs(2),
        ..IngestConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_full_queue_is_resource_exhausted_with_retry_info_and_nothing_is_lost() {
    let mut h = Harness::start(tiny_queue()).await;
    let lock = TableLock::take(&h.db).await;

    // First request: taken by the writer, which then waits on the lock.
    let mut c1 = h.grpc_client().await;
    let first = tokio::spawn(async move { c1.export(request(vec![span(1, 1, "first")])).await });
    wait_for_blocked_copies(&h.db, 1).await;
    // Second: waits in the queue.
    let mut c2 = h.grpc_client().await;
    let second = tokio::spawn(async move { c2.export(request(vec![span(2, 1, "second")])).await });
    wait_for_queued(h.ingest(), 1).await;

    // Third: refused at once.
    let mut c3 = h.grpc_client().await;
    let refused = c3
        .export(request(vec![span(3, 1, "third")]))
        .await
        .expect_err("a full queue refuses");
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    let details = RpcStatus::decode(refused.details()).expect("google.rpc.Status details");
    assert_eq!(details.retry_after(), Some(Duration::from_secs(2)));
    let trailer = refused
        .metadata()
        .get_bin(otlp::grpc::RETRY_INFO_TRAILER)
        .expect("the trailer the Python SDK reads")
        .to_bytes()
        .expect("binary metadata");
    let info = otlp::rpc_status::RetryInfo::decode(trailer.as_ref()).expect("RetryInfo");
    assert_eq!(info.retry_delay.map(|d| d.seconds), Some(2));
    assert_eq!(
        srql_bench::otlp_export::retry_delay(&refused),
        Some(Duration::from_secs(2)),
        "a client sees a retryable RESOURCE_EXHAUSTED"
    );
    assert!(
        !first.is_finished() && !second.is_finished(),
        "nothing acknowledged while blocked"
    );

    lock.release().await;
    first.await.expect("task").expect("first acknowledged");
    second.await.expect("task").expect("second acknowledged");
    assert_eq!(h.span_names().await, ["first", "second"]);

    // The refused request goes through once there is room.
    c3.export(request(vec![span(3, 1, "third")]))
        .await
        .expect("retry succeeds");
    assert_eq!(h.span_names().await, ["first", "second", "third"]);
    assert_eq!(h.ingest().stats().refused_busy, 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_full_queue_is_429_with_retry_after_and_nothing_is_lost() {
    let mut h = Harness::start(tiny_queue()).await;
    let router = h.http_router();
    let lock = TableLock::take(&h.db).await;
    let body = |t: u8, name: &str| {
        use prost::Message;
        request(vec![span(t, 1, name)]).encode_to_vec()
    };

    let r1 = router.clone();
    let b1 = body(1, "first");
    let first =
        tokio::spawn(async move { http_post(&r1, "application/x-protobuf", None, b1).await });
    wait_for_blocked_copies(&h.db, 1).await;
    let r2 = router.clone();
    let b2 = body(2, "second");
    let second =
        tokio::spawn(async move { http_post(&r2, "application/x-protobuf", None, b2).await });
    wait_for_queued(h.ingest(), 1).await;

    let refused = http_post(&router, "application/x-protobuf", None, body(3, "third")).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        refused
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("2")
    );
    let status = RpcStatus::decode(refused.body.as_ref()).expect("google.rpc.Status body");
    assert_eq!(status.code, tonic::Code::ResourceExhausted as i32);
    assert_eq!(status.retry_after(), Some(Duration::from_secs(2)));

    // The JSON flavour of the same refusal.
    let refused = http_post(
        &router,
        "application/json",
        None,
        format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"11111111111111111111111111111103","spanId":"2222222222222201","name":"third","startTimeUnixNano":"{}"}}]}}]}}]}}"#,
            chrono::Utc::now().timestamp_nanos_opt().expect("now in range")
        )
        .into_bytes(),
    )
    .await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.json()["code"], 8);
    assert_eq!(refused.json()["details"][0]["retryDelay"], "2s");

    lock.release().await;
    assert_eq!(first.await.expect("task").status, StatusCode::OK);
    assert_eq!(second.await.expect("task").status, StatusCode::OK);
    assert_eq!(h.span_names().await, ["first", "second"]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn span_budget_refuses_before_the_request_count_does() {
    let mut h = Harness::start(IngestConfig {
        max_queued_requests: 100,
        max_queued_spans: 3,
        writers: 1,
        ..IngestConfig::default()
    })
    .await;
    let lock = TableLock::take(&h.db).await;
    let mut c = h.grpc_client().await;
    let mut c1 = c.clone();
    let two = tokio::spawn(async move {
        c1.export(request(vec![span(1, 1, "a"), span(1, 2, "b")]))
            .await
    });
    wait_for_blocked_copies(&h.db, 1).await;
    let refused = c
        .export(request(vec![span(2, 1, "c"), span(2, 2, "d")]))
        .await
        .expect_err("over the span budget");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    lock.release().await;
    two.await.expect("task").expect("first request stored");
    assert_eq!(h.span_names().await, ["a", "b"]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_requests_are_written_in_one_copy() {
    let mut h = Harness::start(IngestConfig {
        writers: 1,
        ..IngestConfig::default()
    })
    .await;
    let lock = TableLock::take(&h.db).await;
    let mut tasks = Vec::new();
    let mut c = h.grpc_client().await;
    let mut c0 = c.clone();
    tasks.push(tokio::spawn(async move {
        c0.export(request(vec![span(0, 1, "s0")])).await
    }));
    wait_for_blocked_copies(&h.db, 1).await;
    for t in 1..=5u8 {
        let mut ct = c.clone();
        tasks.push(tokio::spawn(async move {
            ct.export(request(vec![span(t, 1, &format!("s{t}"))])).await
        }));
    }
    wait_for_queued(h.ingest(), 5).await;
    lock.release().await;
    for t in tasks {
        t.await.expect("task").expect("acknowledged");
    }
    let stats = h.ingest().stats();
    assert_eq!((stats.requests, stats.spans), (6, 6));
    assert_eq!(
        stats.batches, 2,
        "the blocked COPY, then the five waiting requests together"
    );
    c.export(request(vec![span(9, 1, "s9")]))
        .await
        .expect("after");
    assert_eq!(h.count_spans().await, 7);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_accepted_requests_before_returning() {
    let mut h = Harness::start(IngestConfig {
        writers: 1,
        ..IngestConfig::default()
    })
    .await;
    let lock = TableLock::take(&h.db).await;
    let mut c = h.grpc_client().await;
    let mut tasks = Vec::new();
    for t in 0..4u8 {
        let mut ct = c.clone();
        tasks.push(tokio::spawn(async move {
            ct.export(request(vec![span(t, 1, &format!("d{t}"))])).await
        }));
        if t == 0 {
            wait_for_blocked_copies(&h.db, 1).await;
        }
    }
    wait_for_queued(h.ingest(), 3).await;

    // Shutdown starts while four requests are accepted but unwritten.
    let db_url = h.db.url.clone();
    let stopping = tokio::spawn(async move {
        h.stop().await;
        h
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!stopping.is_finished(), "shutdown waits for the queue");
    lock.release().await;
    let h = stopping.await.expect("stopped");
    for t in tasks {
        t.await
            .expect("task")
            .expect("acknowledged before shutdown completed");
    }
    assert_eq!(h.span_names().await, ["d0", "d1", "d2", "d3"]);
    // New connections are no longer accepted.
    assert!(
        srql_bench::otlp_export::connect(&format!("http://{}", h.grpc))
            .await
            .is_err()
            || c.export(request(vec![span(9, 9, "late")])).await.is_err(),
        "a stopped receiver takes nothing"
    );
    let client = store::db::connect(&db_url).await.expect("db");
    let n: i64 = client
        .query_one("SELECT count(*) FROM otel_traces", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 4);
}
