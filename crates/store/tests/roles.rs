//! Least privilege (issue 11): SRQL queries run as a read-only role, ingest and
//! maintenance as a writer that is no superuser.

use chrono::{Duration, Utc};
use srql_bench::spans::{copy_spans, Arrival};
use store::summaries::{Maintenance, RefreshMethod, SummaryConfig, SummaryMode};
use store::testing::TestDb;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;
use workload::{Generator, Span, WorkloadConfig};

fn config() -> SummaryConfig {
    SummaryConfig {
        window: Duration::days(7),
        retention: Duration::days(7),
        refresh_interval: Duration::minutes(2),
    }
}

fn spans(seed: u64, n: u64) -> Vec<Span> {
    let now = Utc::now();
    let cfg = WorkloadConfig::for_spans(seed, n, now - Duration::hours(6), now);
    Generator::new(cfg).flat_map(|t| t.spans).collect()
}

/// A database set up as `srql migrate` does, with some spans, in `mode`.
async fn setup(mode: SummaryMode) -> TestDb {
    let db = TestDb::empty().await;
    let maintenance = Maintenance {
        mode,
        drain_interval: Duration::seconds(1),
    };
    store::setup::run_with(&db.url, &config(), &maintenance, false, &mut |_| {})
        .await
        .expect("setup");
    copy_spans(
        &db.client().await,
        &spans(1, SETUP_SPANS as u64),
        Arrival::Simulated,
    )
    .await
    .expect("spans");
    db
}

const SETUP_SPANS: usize = 500;

async fn connect(url: &str) -> Client {
    store::db::connect(url).await.expect("connect")
}

/// The statement must be refused for lack of privilege (or because the transaction
/// is read-only), not for some other reason.
async fn refused(client: &Client, sql: &str) {
    let err = client
        .batch_execute(sql)
        .await
        .err()
        .unwrap_or_else(|| panic!("`{sql}` was allowed"));
    let code = err.code().cloned();
    assert!(
        code == Some(SqlState::INSUFFICIENT_PRIVILEGE)
            || code == Some(SqlState::READ_ONLY_SQL_TRANSACTION),
        "`{sql}`: {err:?}"
    );
}

#[tokio::test]
async fn the_reader_only_reads() {
    let db = setup(SummaryMode::MaterializedView).await;
    let reader = connect(&db.reader_url()).await;
    let read_only: String = reader
        .query_one("SHOW transaction_read_only", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(read_only, "on");
    let n: i64 = reader
        .query_one("SELECT count(*) FROM otel_traces", &[])
        .await
        .expect("reads spans")
        .get(0);
    assert_eq!(n as usize, spans(1, SETUP_SPANS as u64).len());
    reader
        .query("SELECT * FROM srql_settings", &[])
        .await
        .expect("reads settings");
    reader
        .query("SELECT * FROM otel_trace_summaries LIMIT 1", &[])
        .await
        .expect("reads summaries");

    refused(
        &reader,
        "INSERT INTO srql_settings (key, value) VALUES ('x', 'y')",
    )
    .await;
    refused(&reader, "UPDATE srql_settings SET value = 'x'").await;
    refused(&reader, "DELETE FROM otel_traces").await;
    refused(&reader, "CREATE TABLE sneaky (x int)").await;
    refused(&reader, "COPY (SELECT 1) TO PROGRAM 'id'").await;
    refused(&reader, "CALL srql_refresh_summaries()").await;
    // Leaving read-only mode does not give it any privilege.
    for sql in [
        "INSERT INTO srql_settings (key, value) VALUES ('x', 'y')",
        "DELETE FROM otel_traces",
        "CREATE TABLE sneaky (x int)",
        "COPY (SELECT 1) TO PROGRAM 'id'",
        "CALL srql_refresh_summaries()",
        "SELECT srql_drop_expired_partitions('1 day')",
    ] {
        let err = reader
            .batch_execute(&format!("BEGIN; SET TRANSACTION READ WRITE; {sql}; COMMIT"))
            .await
            .err()
            .unwrap_or_else(|| panic!("`{sql}` was allowed in a read-write transaction"));
        assert_eq!(
            err.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "`{sql}`: {err:?}"
        );
        reader.batch_execute("ROLLBACK").await.unwrap();
    }
}

#[tokio::test]
async fn the_writer_ingests_and_maintains_but_is_no_superuser() {
    let db = setup(SummaryMode::MaterializedView).await;
    let writer = connect(&db.writer_url()).await;
    let superuser: bool = writer
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = session_user",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!superuser);
    let acting_as: String = writer
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        acting_as, "srql_owner",
        "what the writer creates is the owner's"
    );
    refused(&writer, "COPY (SELECT 1) TO PROGRAM 'id'").await;
    refused(&writer, "CREATE ROLE sneaky SUPERUSER").await;

    let batch = spans(2, 300);
    let n = copy_spans(&writer, &batch, Arrival::Simulated)
        .await
        .expect("ingest");
    assert_eq!(n as usize, batch.len());
    let run = store::summaries::refresh(&writer, RefreshMethod::Concurrently)
        .await
        .expect("refresh");
    assert_eq!(run.outcome, store::summaries::RunOutcome::Ok, "{run:?}");
    store::partitions::upkeep(&writer, Duration::days(7))
        .await
        .expect("partition upkeep");
    srql_bench::load::bulk(
        &db.writer_url(),
        WorkloadConfig::for_spans(
            3,
            2_000,
            Utc::now() - Duration::days(3),
            Utc::now() - Duration::days(2),
        ),
        1,
        |_| {},
    )
    .await
    .expect("bulk load as writer");
}

#[tokio::test]
async fn the_writer_drains_in_incremental_mode() {
    let db = setup(SummaryMode::Incremental).await;
    let writer = connect(&db.writer_url()).await;
    copy_spans(&writer, &spans(4, 300), Arrival::Simulated)
        .await
        .expect("ingest with capture triggers");
    let run = store::summaries::refresh(&writer, RefreshMethod::Concurrently)
        .await
        .expect("drain");
    assert_eq!(run.outcome, store::summaries::RunOutcome::Ok, "{run:?}");
    let reader = connect(&db.reader_url()).await;
    let pending: i64 = reader
        .query_one("SELECT count(*) FROM srql_summary_log", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(pending, 0, "the drain emptied the log");
    let rows: i64 = reader
        .query_one("SELECT count(*) FROM otel_trace_summaries", &[])
        .await
        .unwrap()
        .get(0);
    assert!(rows > 0);
}

/// Roles are global to the cluster; many databases migrate at once in the tests.
#[tokio::test]
async fn concurrent_migrations_create_the_roles_once() {
    let mut tasks = Vec::new();
    for _ in 0..6 {
        tasks.push(tokio::spawn(async {
            let db = TestDb::empty().await;
            let mut client = db.client().await;
            store::migrate::run(&mut client).await.map(|_| ())
        }));
    }
    for t in tasks {
        t.await.unwrap().expect("migrate");
    }
}
