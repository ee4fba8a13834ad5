//! Whoever writes rows cannot decide how many partitions exist: upkeep creates day
//! partitions only inside its horizon, whatever the default partition holds.

use chrono::{Duration, Utc};
use store::partitions::{upkeep, DAYS_AHEAD};
use store::testing::TestDb;

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn rows_on_a_thousand_future_days_create_no_partition_past_the_horizon() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    // 1,000 spans on 1,000 days from 2100-01-01, written directly as SQL: the
    // receivers refuse such spans, but nothing stops another writer.
    client
        .execute(
            "INSERT INTO otel_traces (timestamp, trace_id, span_id, parent_span_id)
             SELECT timestamptz '2100-01-01 12:00:00+00' + d * interval '1 day',
                    'future' || d, 's' || d, ''
             FROM generate_series(0, 999) AS d",
            &[],
        )
        .await
        .expect("insert far-future rows");
    // And one stranded inside the horizon, which upkeep does rescue.
    let tomorrow = Utc::now() + Duration::days(1);
    client
        .execute(
            "INSERT INTO otel_traces (timestamp, trace_id, span_id, parent_span_id)
             VALUES ($1, 'near', 'n', '')",
            &[&tomorrow],
        )
        .await
        .expect("insert");

    let report = upkeep(&client, Duration::days(7)).await.expect("upkeep");
    let partitions = store::partitions::list(&client).await.expect("list");
    // Today and DAYS_AHEAD days, nothing else (a day may turn during the test).
    assert!(
        report.created <= DAYS_AHEAD as i32 + 2,
        "created {} partitions: {partitions:?}",
        report.created
    );
    let last = format!(
        "otel_traces_p{}",
        (Utc::now() + Duration::days(DAYS_AHEAD + 1)).format("%Y%m%d")
    );
    assert!(
        partitions.iter().all(|p| *p <= last),
        "a partition past the horizon: {partitions:?}"
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM otel_traces_default").await,
        1000,
        "the far-future rows stay in the default partition, kept"
    );
    assert_eq!(
        count(
            &client,
            &format!(
                "SELECT count(*) FROM otel_traces_p{} WHERE trace_id = 'near'",
                tomorrow.format("%Y%m%d")
            )
        )
        .await,
        1,
        "a row stranded inside the horizon is moved to its day"
    );

    let again = upkeep(&client, Duration::days(7)).await.expect("upkeep");
    assert_eq!(again.created, 0, "a second upkeep creates nothing");
}
