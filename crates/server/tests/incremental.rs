//! Incremental mode through the service: `srql migrate` switches to it (and removes the
//! pg_cron job), the scheduler drains, queries read the summary table with the same rows
//! as the on-the-fly path and as an independent computation, and lag is visible in the
//! response header, `/healthz` and `/metrics`. Switching back restores the view.

mod support;

use axum::http::StatusCode;
use chrono::{Duration, Utc};
use serde_json::{json, Value};
use store::summaries::{self, keys, Maintenance, SummaryConfig, SummaryMode};
use store::testing::TestDb;

fn config() -> SummaryConfig {
    SummaryConfig {
        window: Duration::days(7),
        retention: Duration::days(7),
        refresh_interval: Duration::minutes(2),
    }
}

fn get(path: &str) -> axum::http::Request<axum::body::Body> {
    axum::http::Request::get(path)
        .body(axum::body::Body::empty())
        .expect("request")
}

async fn cron_job_exists(db: &TestDb) -> bool {
    let admin = store::db::connect(&TestDb::admin_url()).await.unwrap();
    admin
        .query_opt(
            "SELECT 1 FROM cron.job WHERE jobname = $1",
            &[&store::cron::job_name(&db.name)],
        )
        .await
        .unwrap()
        .is_some()
}

/// Every row of `query` on the given path, all pages.
async fn rows(app: &axum::Router, query: &str, source: &str) -> Vec<Value> {
    support::all_pages(
        app,
        json!({ "query": query, "limit": 500, "source": source }),
    )
    .await
}

#[tokio::test]
async fn incremental_mode_end_to_end() {
    assert!(
        TestDb::server_has_pg_cron(),
        "this test needs pg_cron: install postgresql-15-cron (scripts/ensure-deps does)"
    );
    let db = TestDb::migrated().await;
    let late = support::seed(&db, 3_000, 3, 17).await;
    store::setup::run(&db.url, &config(), true).await.unwrap();
    assert!(cron_job_exists(&db).await);

    let maintenance = Maintenance {
        mode: SummaryMode::Incremental,
        drain_interval: Duration::milliseconds(250),
    };
    let mut reports = 0;
    let report = store::setup::run_with(&db.url, &config(), &maintenance, true, &mut |_| {
        reports += 1
    })
    .await
    .unwrap();
    assert!(report.view_built && reports > 0);
    assert_eq!(report.mode, SummaryMode::Incremental);
    assert!(
        !cron_job_exists(&db).await,
        "pg_cron counts minutes: no job"
    );
    let client = db.client().await;
    assert_eq!(
        summaries::get_setting(&client, keys::REFRESH_SCHEDULER)
            .await
            .unwrap()
            .as_deref(),
        Some("service")
    );

    // The scheduler drains at the drain interval; the late spans arrive in between.
    let tick = server::scheduler::tick(&db.url).await.unwrap();
    assert_eq!(tick.mode, SummaryMode::Incremental);
    assert_eq!(tick.interval, Duration::milliseconds(250));
    assert_eq!(
        tick.refresh.as_ref().map(|r| r.method.as_str()),
        Some("incremental")
    );
    support::insert(&db, &late).await;
    let run = server::scheduler::tick(&db.url)
        .await
        .unwrap()
        .refresh
        .expect("the service drains");
    assert_eq!(run.outcome, store::summaries::RunOutcome::Ok, "{run:?}");
    assert!(
        run.rows.unwrap_or(0) > 0 && run.lag_max_secs.is_some(),
        "{run:?}"
    );

    let app = support::app(&db, None);
    for q in [
        "in:otel_trace_summaries time:last_7d sort:duration_ms:desc",
        "in:otel_trace_summaries time:last_24h root_service_name:svc-3",
        "in:otel_trace_summaries time:last_7d error_count:>0 sort:timestamp:asc",
    ] {
        let from_table = rows(&app, q, "summaries").await;
        assert_eq!(from_table, rows(&app, q, "on_the_fly").await, "{q}");
        assert!(!from_table.is_empty(), "{q}");
    }
    // And against a computation that shares no SQL with the service.
    let cutoff = Utc::now() - Duration::days(7) + Duration::minutes(1);
    let oracle: Vec<String> = support::summarize(&support::raw_spans(&db).await)
        .into_iter()
        .filter(|s| s.timestamp >= cutoff)
        .map(|s| format!("{}:{}:{}", s.trace_id, s.span_count, s.error_count))
        .collect();
    let mut table: Vec<String> = rows(
        &app,
        "in:otel_trace_summaries time:last_7d sort:timestamp:desc",
        "summaries",
    )
    .await
    .iter()
    .filter(|r| {
        r["timestamp"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| t >= cutoff)
    })
    .map(|r| {
        format!(
            "{}:{}:{}",
            r["trace_id"].as_str().unwrap_or(""),
            r["span_count"],
            r["error_count"]
        )
    })
    .collect();
    table.sort();
    assert_eq!(table, oracle);

    let r = support::query(
        &app,
        json!({ "query": "in:otel_trace_summaries time:last_1h limit:5" }),
    )
    .await;
    assert_eq!(r.source(), "summary_table");
    let age: f64 = r.headers["x-srql-summaries-age-seconds"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(age.is_finite() && age >= 0.0, "{age}");

    let h = support::send(&app, get("/healthz")).await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.body["summaries"]["kind"], json!("table"));
    assert_eq!(h.body["freshness"]["mode"], json!("incremental"));
    assert_eq!(h.body["freshness"]["pending_entries"], json!(0));
    assert!(
        h.body["freshness"]["last_lag"]["p99_seconds"].is_number(),
        "{}",
        h.body
    );
    assert_eq!(
        h.body["refresh"]["last_success"]["method"],
        json!("incremental")
    );

    let m = support::send(&app, get("/metrics")).await;
    let text = m.body.as_str().unwrap_or_default();
    for needle in [
        "srql_summary_lag_seconds{quantile=\"0.99\"} ",
        "srql_summary_pending_entries 0",
        "srql_summary_pending_oldest_seconds 0",
        "srql_summary_age_seconds ",
        "srql_queries_total{source=\"summary_table\"} ",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }

    // Back to the view: the pg_cron job returns, the service stops draining.
    store::setup::run(&db.url, &config(), true).await.unwrap();
    assert!(cron_job_exists(&db).await);
    let tick = server::scheduler::tick(&db.url).await.unwrap();
    assert_eq!(tick.mode, SummaryMode::MaterializedView);
    assert!(tick.refresh.is_none(), "pg_cron refreshes the view");
    let r = support::query(
        &app,
        json!({ "query": "in:otel_trace_summaries time:last_1h limit:5" }),
    )
    .await;
    assert_eq!(r.source(), "materialized_view");
    let m = support::send(&app, get("/metrics")).await;
    assert!(!m
        .body
        .as_str()
        .unwrap_or_default()
        .contains("srql_summary_lag_seconds"));

    let admin = store::db::connect(&TestDb::admin_url()).await.unwrap();
    admin
        .execute(
            "SELECT cron.unschedule($1)",
            &[&store::cron::job_name(&db.name)],
        )
        .await
        .unwrap();
}
