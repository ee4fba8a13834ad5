//! Partition names have one home (migration 0010): no installed function of ours builds
//! or parses a partition name itself. A day built by a bulk-load stage on those helpers
//! ends up with exactly the parent's indexes, none missing or doubled.

use chrono::{NaiveDate, Utc};
use store::testing::TestDb;

/// Only these state the naming rule; every other function calls them.
const HELPERS: &[&str] = &["srql_partition_name", "srql_partition_day"];

#[tokio::test]
async fn no_function_names_partitions_but_the_helpers() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    let offenders: Vec<String> = client
        .query(
            "SELECT p.proname::text FROM pg_proc p
             WHERE p.pronamespace = current_schema()::regnamespace
               AND p.proname LIKE 'srql\\_%'
               AND NOT (p.proname = ANY($1))
               AND (p.prosrc LIKE '%otel\\_traces\\_p%' OR p.prosrc LIKE '%YYYYMMDD%')
             ORDER BY 1",
            &[&HELPERS],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        offenders.is_empty(),
        "functions that build or parse partition names themselves: {offenders:?}"
    );
}

#[tokio::test]
async fn the_rust_name_is_the_sql_name_and_reads_back() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    let day = NaiveDate::from_ymd_opt(2026, 3, 9).unwrap();
    let name = store::partitions::partition_name(&client, day)
        .await
        .unwrap();
    assert_eq!(name, "otel_traces_p20260309");
    let back: chrono::DateTime<Utc> = client
        .query_one("SELECT srql_partition_day($1)", &[&name])
        .await
        .unwrap()
        .get(0);
    assert_eq!(back, day.and_hms_opt(0, 0, 0).unwrap().and_utc());
    for other in [
        "otel_traces_default",
        "otel_traces_p20260309_load",
        "xotel_traces_p20260309",
    ] {
        let none: Option<chrono::DateTime<Utc>> = client
            .query_one("SELECT srql_partition_day($1)", &[&other])
            .await
            .unwrap()
            .get(0);
        assert_eq!(none, None, "{other} is no day partition");
    }
}

/// Each index of a table as its definition without its own name and table, so that a
/// partition's and the parent's compare equal.
async fn index_shapes(client: &tokio_postgres::Client, table: &str) -> Vec<String> {
    client
        .query(
            "SELECT substr(pg_get_indexdef(i.indexrelid), strpos(pg_get_indexdef(i.indexrelid), ' USING '))
             FROM pg_index i WHERE i.indrelid = to_regclass($1) ORDER BY 1",
            &[&table],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn a_staged_day_has_exactly_the_parents_indexes() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    // Far from today, so upkeep never made this day's partition.
    let day = NaiveDate::from_ymd_opt(2031, 1, 15)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let stage: String = client
        .query_one("SELECT srql_load_stage_create($1)", &[&day])
        .await
        .unwrap()
        .get(0);
    client
        .query_one("SELECT srql_load_stage_index($1)", &[&stage])
        .await
        .unwrap();
    let parent = index_shapes(&client, "otel_traces").await;
    assert!(parent.len() >= 4, "the parent's span indexes: {parent:?}");

    let outcome: String = client
        .query_one(
            "SELECT srql_load_stage_finish($1, $2, true)",
            &[&stage, &day],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(outcome, "attached");
    let part = store::partitions::partition_name(&client, day.date_naive())
        .await
        .unwrap();
    assert_eq!(index_shapes(&client, &part).await, parent);
    // Every one of them is the parent's, adopted at ATTACH: none was built a second time.
    let unattached: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_index i
             WHERE i.indrelid = to_regclass($1)
               AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)",
            &[&part],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        unattached, 0,
        "indexes of {part} not attached to the parent's"
    );
}
