//! Migrations apply once, record themselves, and build the spans table as specified;
//! partition upkeep creates days ahead, rescues stranded rows and drops expired days.

use chrono::{Duration, Utc};
use store::testing::TestDb;

#[tokio::test]
async fn migrations_apply_once_and_are_idempotent() {
    let db = TestDb::empty().await;
    let mut client = db.client().await;
    let first = store::migrate::run(&mut client).await.unwrap();
    assert_eq!(
        first,
        store::migrate::MIGRATIONS
            .iter()
            .map(|m| m.version)
            .collect::<Vec<_>>()
    );
    let second = store::migrate::run(&mut client).await.unwrap();
    assert!(second.is_empty(), "second run applied {second:?}");
    assert_eq!(
        store::migrate::applied_versions(&client).await.unwrap(),
        first
    );
}

#[tokio::test]
async fn concurrent_migrators_apply_each_version_once() {
    let db = TestDb::empty().await;
    let (mut a, mut b) = (db.client().await, db.client().await);
    let (ra, rb) = tokio::join!(store::migrate::run(&mut a), store::migrate::run(&mut b));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let mut all: Vec<i32> = ra.into_iter().chain(rb).collect();
    all.sort();
    assert_eq!(
        all,
        store::migrate::MIGRATIONS
            .iter()
            .map(|m| m.version)
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn spans_table_is_partitioned_by_day_with_its_indexes() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    let strategy: String = client
        .query_one(
            "SELECT partstrat::text FROM pg_partitioned_table WHERE partrelid = 'otel_traces'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(strategy, "r");
    // Declared per day (migration 0012), so a sealed day can keep fewer.
    let parent_indexes: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'otel_traces'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(parent_indexes, 0);
    let defs: Vec<String> = client
        .query(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'otel_traces_default' ORDER BY indexname",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let joined = defs.join("\n");
    assert!(joined.contains("(\"timestamp\" DESC)"), "{joined}");
    assert!(joined.contains("(trace_id)"), "{joined}");
    assert!(
        joined.contains("(service_name, \"timestamp\" DESC)"),
        "{joined}"
    );
    // Migration 0011's span search indexes, on by default, and 0016's attribute index.
    assert!(joined.contains("(name, service_name)"), "{joined}");
    assert!(
        joined.contains("USING gin (attributes jsonb_path_ops)"),
        "{joined}"
    );
    assert!(
        joined.contains(
            "(service_name, (((GREATEST(COALESCE((end_time_unix_nano - start_time_unix_nano)"
        ),
        "{joined}"
    );
}

/// The span search indexes come and go as a whole, on every partition, and switching
/// twice changes nothing the second time.
#[tokio::test]
async fn span_search_indexes_can_be_dropped_and_rebuilt() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    let now = Utc::now();
    store::partitions::ensure(&client, now - Duration::days(2), now)
        .await
        .unwrap();
    // Partitions (the default one included) holding the name index.
    let indexed = "SELECT count(DISTINCT i.indrelid) FROM pg_inherits p
                   JOIN pg_index i ON i.indrelid = p.inhrelid
                   WHERE p.inhparent = 'otel_traces'::regclass
                     AND pg_get_indexdef(i.indexrelid) LIKE '%(name, service_name)%'";
    let partitions = count(
        &client,
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'otel_traces'::regclass",
    )
    .await;
    assert!(partitions >= 4, "{partitions} partitions");
    assert_eq!(count(&client, indexed).await, partitions);
    let gin_indexed = "SELECT count(DISTINCT i.indrelid) FROM pg_inherits p
                       JOIN pg_index i ON i.indrelid = p.inhrelid
                       WHERE p.inhparent = 'otel_traces'::regclass
                         AND pg_get_indexdef(i.indexrelid) LIKE '%USING gin (attributes%'";
    assert_eq!(count(&client, gin_indexed).await, partitions);
    assert_eq!(store::span_indexes::set(&client, false).await.unwrap(), 3);
    assert_eq!(store::span_indexes::set(&client, false).await.unwrap(), 0);
    assert_eq!(count(&client, indexed).await, 0);
    assert_eq!(count(&client, gin_indexed).await, 0);
    assert_eq!(store::span_indexes::set(&client, true).await.unwrap(), 3);
    assert_eq!(store::span_indexes::set(&client, true).await.unwrap(), 0);
    let with_index = count(&client, indexed).await;
    assert_eq!(with_index, partitions);
    assert_eq!(count(&client, gin_indexed).await, partitions);
    // Per day (0012), never on the parent, or sealed days would have to carry them.
    let on_parent = count(
        &client,
        "SELECT count(*) FROM pg_index WHERE indrelid = 'otel_traces'::regclass",
    )
    .await;
    assert_eq!(on_parent, 0);
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn span_without_a_partition_is_kept_and_later_moved_to_its_day() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    let ts = Utc::now() - Duration::days(2);
    client
        .execute(
            "INSERT INTO otel_traces (timestamp, trace_id, span_id, parent_span_id) VALUES ($1, 'a', 'b', '')",
            &[&ts],
        )
        .await
        .expect("insert with no partition for its day");
    assert_eq!(
        count(&client, "SELECT count(*) FROM otel_traces_default").await,
        1
    );

    let report = store::partitions::upkeep(&client, Duration::days(7))
        .await
        .unwrap();
    assert!(
        report.created > store::partitions::DAYS_AHEAD as i32,
        "today and the days ahead"
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM otel_traces_default").await,
        0
    );
    assert_eq!(count(&client, "SELECT count(*) FROM otel_traces").await, 1);
    let day = format!("otel_traces_p{}", ts.format("%Y%m%d"));
    let in_day = count(&client, &format!("SELECT count(*) FROM {day}")).await;
    assert_eq!(in_day, 1, "row moved into {day}");
}

#[tokio::test]
async fn upkeep_creates_days_ahead_and_drops_only_expired_days() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    let now = Utc::now();
    store::partitions::ensure(&client, now - Duration::days(10), now)
        .await
        .unwrap();
    for days_ago in [10, 8, 6, 0] {
        client
            .execute(
                "INSERT INTO otel_traces (timestamp, trace_id, span_id) VALUES ($1, $2, 's')",
                &[&(now - Duration::days(days_ago)), &format!("t{days_ago}")],
            )
            .await
            .unwrap();
    }
    let report = store::partitions::upkeep(&client, Duration::days(7))
        .await
        .unwrap();
    let parts = store::partitions::list(&client).await.unwrap();
    let expected_first = format!(
        "otel_traces_p{}",
        (now - Duration::days(7)).format("%Y%m%d")
    );
    let expected_last = format!(
        "otel_traces_p{}",
        (now + Duration::days(store::partitions::DAYS_AHEAD)).format("%Y%m%d")
    );
    assert_eq!(parts.first(), Some(&expected_first), "{parts:?}");
    assert_eq!(parts.last(), Some(&expected_last), "{parts:?}");
    assert_eq!(
        report.dropped, 3,
        "days 10, 9 and 8 ago are wholly past retention"
    );
    let left: Vec<String> = client
        .query("SELECT trace_id FROM otel_traces ORDER BY trace_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, vec!["t0", "t6"]);
    // Idempotent.
    let again = store::partitions::upkeep(&client, Duration::days(7))
        .await
        .unwrap();
    assert_eq!(
        again,
        store::partitions::UpkeepReport {
            created: 0,
            dropped: 0
        }
    );
}

/// The long-trace index serves the planner's reach test only while its predicate says
/// the same reach as `srql_plan::REACH_SECS`; otherwise every span search and widened
/// aggregation silently scans every trace's extent again.
#[tokio::test]
async fn the_long_trace_index_uses_the_planners_reach() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT pg_get_expr(i.indpred, i.indrelid) FROM pg_index i \
             WHERE i.indexrelid = 'srql_summary_extent_long_idx'::regclass",
            &[],
        )
        .await
        .expect("the index exists");
    let predicate: String = row.get(0);
    let reach = chrono::Duration::seconds(srql_plan::REACH_SECS);
    let as_interval = format!(
        "'{:02}:{:02}:{:02}'::interval",
        reach.num_hours(),
        reach.num_minutes() % 60,
        reach.num_seconds() % 60
    );
    assert_eq!(predicate, format!("((last_ts - first_ts) > {as_interval})"));
}

/// Every heap day plans attribute conditions from a fine histogram of `attributes`
/// (migration 0030): the days that exist, new days, and days written by the bulk loader.
#[tokio::test]
async fn heap_days_keep_a_fine_histogram_of_attributes() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    let now = Utc::now();
    store::partitions::ensure(&client, now - Duration::days(2), now + Duration::days(2))
        .await
        .unwrap();
    let stage: String = client
        .query_one(
            "SELECT srql_load_stage_create(date_trunc('day', now() - interval '5 days'))",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    client
        .execute("SELECT srql_load_stage_index($1)", &[&stage])
        .await
        .unwrap();
    let targets: Vec<(String, i32)> = client
        .query(
            "SELECT c.relname::text, a.attstattarget::int4 FROM pg_class c
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'attributes'
             WHERE c.relname = $1 OR c.oid IN (
                 SELECT inhrelid FROM pg_inherits WHERE inhparent = 'otel_traces'::regclass)
             ORDER BY 1",
            &[&stage],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(targets.len() >= 6, "{targets:?}");
    assert!(targets.iter().all(|(_, t)| *t == 1000), "{targets:?}");
}
