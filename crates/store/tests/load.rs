//! The workload loaders: a bulk load stores exactly what the generator made; the live
//! mode keeps inserting at about its rate and delivers late spans after the rest.

use chrono::{Duration, Utc};
use store::testing::TestDb;
use tokio::sync::watch;
use workload::{Generator, WorkloadConfig};

#[tokio::test]
async fn bulk_load_stores_every_generated_span_with_its_simulated_arrival() {
    let db = TestDb::migrated().await;
    let now = Utc::now();
    let config = WorkloadConfig::for_spans(3, 30_000, now - Duration::days(2), now);
    let expected: u64 = Generator::new(config).map(|t| t.spans.len() as u64).sum();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let s = seen.clone();
    let report = store::load::bulk(&db.url, config, 2, move |n| {
        s.fetch_max(n, std::sync::atomic::Ordering::Relaxed);
    })
    .await
    .expect("bulk load");
    assert_eq!(report.spans, expected);
    assert_eq!(
        seen.load(std::sync::atomic::Ordering::Relaxed),
        expected,
        "progress reaches the total"
    );
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT trace_id),
                    count(*) FILTER (WHERE created_at - timestamp > interval '1 second')
             FROM otel_traces",
            &[],
        )
        .await
        .unwrap();
    let (spans, traces, late): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(spans as u64, expected);
    assert_eq!(traces as u64, report.traces);
    let share = late as f64 / spans as f64;
    assert!((0.005..0.02).contains(&share), "late share {share}");
    let default_rows: i64 = client
        .query_one("SELECT count(*) FROM otel_traces_default", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(default_rows, 0, "every day had its partition");
}

#[tokio::test]
async fn follow_mode_inserts_at_its_rate_and_late_spans_arrive_later() {
    let db = TestDb::migrated().await;
    let (stop, rx) = watch::channel(false);
    let url = db.url.clone();
    // Late delays shrunk 1000x: up to 0.6 s instead of 10 minutes.
    let task =
        tokio::spawn(async move { store::load::follow(&url, 5, 3_000, 0.001, rx, |_| {}).await });
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    stop.send(true).unwrap();
    let written = task.await.unwrap().expect("follow");
    assert!(
        (4_000..=14_000).contains(&written),
        "about 3 s at 3000 spans/s, got {written}"
    );
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE created_at - timestamp > interval '50 milliseconds')
             FROM otel_traces",
            &[],
        )
        .await
        .unwrap();
    let (spans, late): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(spans as u64, written, "every span written is stored");
    assert!(late > 0, "some spans arrived after their trace");
}
