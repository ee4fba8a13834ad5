//! The workload loaders: a bulk load stores exactly what the generator made; the live
//! mode keeps inserting at about its rate and delivers late spans after the rest.

use chrono::{DateTime, Duration, Utc};
use srql_bench::load::DayOutcome;
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
    let report = srql_bench::load::bulk(&db.url, config, 2, move |n| {
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
    assert!(
        report
            .days
            .values()
            .all(|o| matches!(o, DayOutcome::Attached | DayOutcome::Replaced)),
        "every day was empty, so every day was built offline: {:?}",
        report.days
    );
    assert_partitions_like_the_parent(&client).await;
}

/// Every partition has exactly the parent's indexes (migrations 0001, 0008 and 0011), each
/// attached to its parent index and named as PostgreSQL names a partition's; no stage table
/// or load constraint is left behind.
async fn assert_partitions_like_the_parent(client: &tokio_postgres::Client) {
    let parent: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_index WHERE indrelid = 'otel_traces'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(parent >= 4, "the parent has {parent} indexes");
    let rows = client
        .query(
            "SELECT c.relname::text,
                    count(i.indexrelid),
                    count(ip.inhparent),
                    count(*) FILTER (WHERE ic.relname::text LIKE c.relname || '\\_%')
             FROM pg_inherits p
             JOIN pg_class c ON c.oid = p.inhrelid
             LEFT JOIN pg_index i ON i.indrelid = c.oid
             LEFT JOIN pg_class ic ON ic.oid = i.indexrelid
             LEFT JOIN pg_inherits ip ON ip.inhrelid = i.indexrelid
             WHERE p.inhparent = 'otel_traces'::regclass
             GROUP BY c.relname ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    assert!(rows.len() > 3);
    for row in rows {
        let (name, indexes, attached, named): (String, i64, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        assert_eq!(
            (indexes, attached, named),
            (parent, parent, parent),
            "{name}: indexes, attached to the parent's, named after the partition"
        );
    }
    let leftovers: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM pg_class WHERE relname LIKE '%\\_load')
                  + (SELECT count(*) FROM pg_constraint WHERE conname = 'srql_load_bounds')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(leftovers, 0, "stage tables or load constraints left behind");
}

/// Inserts one span with only the required columns; returns nothing, the span id is
/// the caller's.
async fn insert_span(client: &tokio_postgres::Client, at: DateTime<Utc>, span_id: &str) {
    client
        .execute(
            "INSERT INTO otel_traces (timestamp, trace_id, span_id) VALUES ($1, 'pre-existing', $2)",
            &[&at, &span_id],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn bulk_load_keeps_every_span_already_stored_whatever_state_its_day_is_in() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    let now = Utc::now();
    let config = WorkloadConfig::for_spans(4, 30_000, now - Duration::days(3), now);
    let expected: u64 = Generator::new(config).map(|t| t.spans.len() as u64).sum();
    // Today: an empty partition (upkeep makes these ahead of time). Yesterday: a
    // partition with a span. Two days ago: no partition, a span stranded in the default
    // partition. Three days ago: nothing at all.
    let day = |n: i64| now - Duration::days(n);
    store::partitions::ensure(&client, day(1), day(0))
        .await
        .unwrap();
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS otel_traces_p{}, otel_traces_p{}",
            day(2).format("%Y%m%d"),
            day(3).format("%Y%m%d")
        ))
        .await
        .unwrap();
    insert_span(&client, day(1), "in-partition").await;
    insert_span(&client, day(2), "in-default").await;
    let stranded: i64 = client
        .query_one("SELECT count(*) FROM otel_traces_default", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stranded, 1);

    let report = srql_bench::load::bulk(&db.url, config, 2, |_| {})
        .await
        .expect("bulk load");
    let outcome = |n: i64| report.days.get(&day(n).date_naive()).copied();
    assert_eq!(outcome(0), Some(DayOutcome::Replaced));
    assert_eq!(outcome(1), Some(DayOutcome::Copied));
    assert_eq!(outcome(2), Some(DayOutcome::Attached));
    assert_eq!(outcome(3), Some(DayOutcome::Attached));

    let row = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE trace_id = 'pre-existing'),
                    (SELECT count(*) FROM otel_traces_default)
             FROM otel_traces",
            &[],
        )
        .await
        .unwrap();
    let (spans, kept, default_rows): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(spans as u64, expected + 2);
    assert_eq!(kept, 2, "spans stored before the load are still there");
    assert_eq!(default_rows, 0, "the stranded span moved into its day");
    assert_partitions_like_the_parent(&client).await;
}

#[tokio::test]
async fn a_query_running_on_the_spans_delays_the_load_without_failing_it() {
    let db = TestDb::migrated().await;
    let now = Utc::now();
    let config = WorkloadConfig::for_spans(5, 10_000, now - Duration::days(1), now);
    let expected: u64 = Generator::new(config).map(|t| t.spans.len() as u64).sum();
    let reader = db.client().await;
    store::partitions::ensure(&reader, now, now).await.unwrap();
    // Holds what a long query holds: a share lock on otel_traces and every partition,
    // which replacing today's empty partition and attaching yesterday's must wait for.
    reader
        .batch_execute("BEGIN; LOCK TABLE otel_traces IN ACCESS SHARE MODE")
        .await
        .unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        reader.batch_execute("COMMIT").await.unwrap();
    });
    let report = srql_bench::load::bulk(&db.url, config, 2, |_| {})
        .await
        .expect("the load waits, retries and finishes");
    release.await.unwrap();
    assert_eq!(
        report.days.get(&now.date_naive()),
        Some(&DayOutcome::Replaced)
    );
    let client = db.client().await;
    let spans: i64 = client
        .query_one("SELECT count(*) FROM otel_traces", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(spans as u64, expected);
    assert_partitions_like_the_parent(&client).await;
}

#[tokio::test]
async fn days_built_offline_are_captured_for_incremental_summaries() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    client
        .execute("SELECT srql_summary_set_capture(true)", &[])
        .await
        .unwrap();
    let now = Utc::now();
    let config = WorkloadConfig::for_spans(6, 20_000, now - Duration::days(2), now);
    let report = srql_bench::load::bulk(&db.url, config, 2, |_| {})
        .await
        .expect("bulk load");
    assert!(report
        .days
        .values()
        .all(|o| matches!(o, DayOutcome::Attached | DayOutcome::Replaced)));
    let row = client
        .query_one(
            "SELECT (SELECT count(DISTINCT trace_id) FROM otel_traces),
                    (SELECT count(*) FROM (SELECT DISTINCT t.trace_id FROM otel_traces t
                      WHERE NOT EXISTS (SELECT 1 FROM srql_summary_log l
                                        WHERE l.trace_id = t.trace_id
                                          AND (l.first_ts IS NULL OR l.first_ts <= t.timestamp)
                                          AND (l.last_ts IS NULL OR l.last_ts >= t.timestamp))) x),
                    (SELECT count(*) FROM pg_inherits i WHERE i.inhparent = 'otel_traces'::regclass
                       AND NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = i.inhrelid
                                         AND g.tgname = 'srql_summary_inserted'))",
            &[],
        )
        .await
        .unwrap();
    let (traces, uncovered, without_trigger): (i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2));
    assert!(traces > 1_000);
    assert_eq!(uncovered, 0, "every span is covered by a log entry");
    assert_eq!(without_trigger, 0, "every partition captures later writes");
}

#[tokio::test]
async fn follow_mode_inserts_at_its_rate_and_late_spans_arrive_later() {
    let db = TestDb::migrated().await;
    let (stop, rx) = watch::channel(false);
    let url = db.url.clone();
    // Late delays shrunk 1000x: up to 0.6 s instead of 10 minutes.
    let task =
        tokio::spawn(
            async move { srql_bench::load::follow(&url, 5, 3_000, 0.001, rx, |_| {}).await },
        );
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
