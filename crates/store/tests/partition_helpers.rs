//! Partition names have one home (migration 0010): no installed function of ours builds
//! or parses a partition name itself. A day built by a bulk-load stage on those helpers
//! ends up with exactly the indexes of a day upkeep makes, none missing or doubled.

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
async fn a_staged_day_has_exactly_the_indexes_of_a_day_upkeep_makes() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    // Far from today, so upkeep never made these days' partitions.
    let day = NaiveDate::from_ymd_opt(2031, 1, 15)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let next_day = day + chrono::Duration::days(1);
    let stage: String = client
        .query_one("SELECT srql_load_stage_create($1)", &[&day])
        .await
        .unwrap()
        .get(0);
    client
        .query_one("SELECT srql_load_stage_index($1)", &[&stage])
        .await
        .unwrap();
    let outcome: String = client
        .query_one(
            "SELECT srql_load_stage_finish($1, $2, true)",
            &[&stage, &day],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(outcome, "attached");
    client
        .query_one("SELECT srql_ensure_partition($1)", &[&next_day])
        .await
        .unwrap();

    // The one list of a heap day's indexes (0012), as `USING ...` shapes.
    let listed: Vec<String> = client
        .query("SELECT definition FROM srql_span_indexes ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(listed.len() >= 4, "the span index list: {listed:?}");
    let staged = store::partitions::partition_name(&client, day.date_naive())
        .await
        .unwrap();
    let made = store::partitions::partition_name(&client, next_day.date_naive())
        .await
        .unwrap();
    let staged_shapes = index_shapes(&client, &staged).await;
    assert_eq!(staged_shapes, index_shapes(&client, &made).await);
    let mut trimmed: Vec<&str> = staged_shapes.iter().map(|s| s.trim()).collect();
    trimmed.sort();
    assert_eq!(trimmed, listed);
}
