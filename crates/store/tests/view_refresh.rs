//! The materialized view's refresh leaves the planner knowing what it holds: a plain
//! refresh (the first population, or `srql refresh --full`) swaps in a new heap whose
//! row count the planner only learns from ANALYZE, and without it first pages planned as
//! if the view were empty until autovacuum came round (minutes after a large load).

use chrono::{DateTime, Duration, Utc};
use srql_bench::spans::{copy_spans, Arrival};
use store::summaries::SummaryConfig;
use store::testing::TestDb;
use tokio_postgres::Client;
use workload::{Generator, Span, WorkloadConfig};

fn traces(seed: u64, n: u64, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Span> {
    Generator::new(WorkloadConfig::new(seed, n, from, to))
        .flat_map(|t| t.spans)
        .collect()
}

async fn planner_rows(client: &Client) -> f32 {
    client
        .query_one(
            "SELECT reltuples FROM pg_class WHERE oid = 'otel_trace_summaries'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

async fn summary_rows(client: &Client) -> i64 {
    client
        .query_one("SELECT count(*) FROM otel_trace_summaries", &[])
        .await
        .unwrap()
        .get(0)
}

/// A database set up as `srql migrate` does, in view mode, with no spans yet.
async fn view_mode_db() -> (TestDb, Client) {
    let db = TestDb::empty().await;
    let cfg = SummaryConfig {
        window: Duration::days(7),
        retention: Duration::days(7),
        refresh_interval: Duration::minutes(2),
    };
    store::setup::run(&db.url, &cfg, false).await.unwrap();
    let client = db.client().await;
    (db, client)
}

#[tokio::test]
async fn a_plain_refresh_leaves_the_view_analyzed() {
    let (_db, client) = view_mode_db().await;
    assert_eq!(summary_rows(&client).await, 0, "built empty");

    let now = Utc::now();
    let spans = traces(7, 400, now - Duration::hours(6), now);
    copy_spans(&client, &spans, Arrival::At(now)).await.unwrap();
    // The view is not populated concurrently the first time: this is a plain refresh.
    client
        .batch_execute("CALL srql_refresh_summaries('concurrently')")
        .await
        .unwrap();
    let rows = summary_rows(&client).await;
    assert_eq!(rows, 400);
    assert_eq!(
        planner_rows(&client).await as i64,
        rows,
        "analyzed after the first population"
    );

    let more = traces(8, 100, now - Duration::hours(1), now);
    copy_spans(&client, &more, Arrival::At(now)).await.unwrap();
    client
        .batch_execute("CALL srql_refresh_summaries('full')")
        .await
        .unwrap();
    assert_eq!(summary_rows(&client).await, 500);
    assert_eq!(
        planner_rows(&client).await as i64,
        500,
        "analyzed after a full refresh"
    );
}

/// What `store::summaries::refresh` (the scheduler, `srql refresh`, the benchmarks) adds
/// after a plain refresh: a VACUUM, so that index-only scans of the new heap can read the
/// index alone, where autovacuum would not come round until later refreshes' deletes add
/// up. A concurrent refresh keeps the heap and needs none.
#[tokio::test]
async fn a_plain_refresh_through_the_service_leaves_the_view_vacuumed() {
    let (_db, client) = view_mode_db().await;
    let now = Utc::now();
    let spans = traces(9, 400, now - Duration::hours(6), now);
    copy_spans(&client, &spans, Arrival::At(now)).await.unwrap();
    let vacuums = || async {
        client
            .query_one(
                "SELECT vacuum_count FROM pg_stat_user_tables \
                 WHERE relid = 'otel_trace_summaries'::regclass",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    use store::summaries::RefreshMethod;
    for (method, want) in [
        (RefreshMethod::Concurrently, 0),
        (RefreshMethod::Full, 1),
        (RefreshMethod::Concurrently, 1),
        (RefreshMethod::Full, 2),
    ] {
        store::summaries::refresh(&client, method).await.unwrap();
        assert_eq!(vacuums().await, want, "after {}", method.as_str());
    }
}
