//! Each resource stored once (migration 0032): spans written by us carry a resource id,
//! rows written inline by other writers keep their columns, and `srql_spans` shows both
//! alike; retention drops the resources no kept day can refer to.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use store::ingest::{copy_records, SpanResource, SpanRow, SpanScope};
use store::testing::TestDb;
use tokio_postgres::Client;

fn resource(service: &str, instance: &str) -> Arc<SpanResource> {
    Arc::new(SpanResource {
        service_name: Some(service.into()),
        service_version: Some("1.2.3".into()),
        service_instance: Some(instance.into()),
        attributes: json!({
            "service.name": service,
            "service.instance.id": instance,
            "k8s.namespace.name": "prod",
        })
        .to_string(),
    })
}

fn span(resource: &Arc<SpanResource>, at: DateTime<Utc>, n: u32) -> SpanRow {
    let nanos = at.timestamp_nanos_opt().expect("in range");
    SpanRow {
        timestamp: at,
        trace_id: format!("{n:032x}"),
        span_id: format!("{n:016x}"),
        parent_span_id: String::new(),
        name: "GET /".into(),
        kind: 2,
        start_time_unix_nano: nanos,
        end_time_unix_nano: nanos + 1_000_000,
        resource: resource.clone(),
        scope: Arc::new(SpanScope::default()),
        status_code: 0,
        status_message: String::new(),
        attributes: "{}".into(),
        events: "[]".into(),
        links: "[]".into(),
    }
}

async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.expect(sql).get(0)
}

/// What a reader sees of one span's resource through `srql_spans`.
async fn seen(client: &Client, span_id: &str) -> (Option<String>, Option<String>, Value) {
    let r = client
        .query_one(
            "SELECT service_version, service_instance, resource_attributes
             FROM srql_spans WHERE span_id = $1",
            &[&span_id],
        )
        .await
        .expect("one span");
    (r.get(0), r.get(1), r.get(2))
}

#[tokio::test]
async fn a_resource_is_stored_once_and_read_back_with_every_span() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    let now = Utc::now();
    let cart = resource("cart", "cart-1");
    // The same resource behind a second allocation, as another request would carry it.
    let cart_again = Arc::new((*cart).clone());
    let pay = resource("pay", "pay-1");
    let rows: Vec<SpanRow> = (0..50)
        .map(|n| span(if n % 2 == 0 { &cart } else { &pay }, now, n))
        .chain((50..60).map(|n| span(&cart_again, now, n)))
        .collect();
    assert_eq!(copy_records(&client, &rows).await.expect("copy"), 60);
    // A second batch meets both resources again and adds no row.
    let more: Vec<SpanRow> = (60..70).map(|n| span(&pay, now, n)).collect();
    copy_records(&client, &more).await.expect("copy");

    assert_eq!(
        count(&client, "SELECT count(*) FROM srql_resources").await,
        2
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM otel_traces
             WHERE resource_id IS NOT NULL AND resource_attributes IS NULL
               AND service_version IS NULL AND service_instance IS NULL"
        )
        .await,
        70,
        "every span keeps an id instead of a copy"
    );
    let (version, instance, attributes) = seen(&client, &format!("{:016x}", 55)).await;
    assert_eq!(version.as_deref(), Some("1.2.3"));
    assert_eq!(instance.as_deref(), Some("cart-1"));
    assert_eq!(attributes["k8s.namespace.name"], "prod");
    assert_eq!(
        seen(&client, &format!("{:016x}", 61)).await.1.as_deref(),
        Some("pay-1")
    );
}

#[tokio::test]
async fn rows_written_inline_by_other_writers_read_as_before() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    // ServiceRadar's writer (and any row stored before migration 0032) keeps the
    // resource in the span and no id.
    client
        .batch_execute(
            "INSERT INTO otel_traces (timestamp, trace_id, span_id, service_name,
                 service_version, service_instance, resource_attributes, attributes)
             VALUES (now(), 'aa', 'inline', 'legacy', '0.9', 'legacy-1',
                     '{\"service.name\": \"legacy\"}', '{}')",
        )
        .await
        .expect("inline row");
    copy_records(&client, &[span(&resource("cart", "cart-1"), Utc::now(), 1)])
        .await
        .expect("copy");
    let (version, instance, attributes) = seen(&client, "inline").await;
    assert_eq!(
        (version.as_deref(), instance.as_deref()),
        (Some("0.9"), Some("legacy-1"))
    );
    assert_eq!(attributes, json!({"service.name": "legacy"}));
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM srql_spans WHERE resource_attributes @> '{\"service.name\": \"cart\"}'"
        )
        .await,
        1
    );
    // The reader role reads the view and the resources.
    let reader = store::db::connect(&db.reader_url()).await.expect("reader");
    assert_eq!(count(&reader, "SELECT count(*) FROM srql_spans").await, 2);
}

#[tokio::test]
async fn reads_that_ask_for_no_resource_column_do_not_join() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    let plan = |sql: &str| {
        let sql = format!("EXPLAIN (COSTS OFF) {sql}");
        let client = &client;
        async move {
            client
                .query(&sql, &[])
                .await
                .expect("explain")
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    let without = plan(
        "SELECT trace_id, name, attributes FROM srql_spans
         WHERE timestamp > now() - interval '1 hour' AND attributes @> '{\"a\": 1}'",
    )
    .await;
    assert!(!without.contains("srql_resources"), "{without}");
    let with = plan("SELECT resource_attributes FROM srql_spans WHERE trace_id = 'x'").await;
    assert!(with.contains("srql_resources"), "{with}");
}

#[tokio::test]
async fn writers_meeting_a_new_resource_at_once_share_one_row() {
    let db = TestDb::migrated().await;
    let fresh = resource("new", "new-1");
    let writers = (0..4u32).map(|w| {
        let url = db.url.clone();
        let fresh = fresh.clone();
        tokio::spawn(async move {
            let client = store::db::connect(&url).await.expect("connect");
            for batch in 0..5u32 {
                let n = w * 100 + batch;
                copy_records(&client, &[span(&fresh, Utc::now(), n)])
                    .await
                    .expect("copy");
            }
        })
    });
    for w in writers.collect::<Vec<_>>() {
        w.await.expect("writer");
    }
    let client = db.client().await;
    assert_eq!(
        count(&client, "SELECT count(*) FROM srql_resources").await,
        1
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM srql_spans WHERE service_instance = 'new-1'"
        )
        .await,
        20
    );
}

#[tokio::test]
async fn retention_drops_the_resources_of_dropped_days_only() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    let now = Utc::now();
    let old_day = now - Duration::days(10);
    store::partitions::ensure(&client, old_day, now)
        .await
        .expect("partitions");
    let gone = resource("gone", "gone-1");
    let kept = resource("kept", "kept-1");
    // `kept` wrote on the old day too, and again today: its last day is today's.
    let rows = [span(&gone, old_day, 1), span(&kept, old_day, 2)];
    copy_records(&client, &rows).await.expect("old spans");
    copy_records(&client, &[span(&kept, now, 3)])
        .await
        .expect("today's span");
    assert_eq!(
        count(&client, "SELECT count(*) FROM srql_resources").await,
        2
    );

    let dropped: i32 = client
        .query_one("SELECT srql_drop_expired_partitions('7 days')", &[])
        .await
        .expect("retention")
        .get(0);
    assert!(dropped >= 1);
    let left: Vec<String> = client
        .query("SELECT service_instance FROM srql_resources", &[])
        .await
        .expect("resources")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, vec!["kept-1".to_string()]);
    assert_eq!(
        seen(&client, &format!("{:016x}", 3)).await.1.as_deref(),
        Some("kept-1")
    );
}
