//! Who refreshes: the pg_cron job where pg_cron is loaded (created from its own database,
//! following the settings row), the service scheduler where it is not.

mod support;

use std::time::Duration as StdDuration;

use chrono::Duration;
use store::cron::CronStatus;
use store::embedded::{EmbeddedCluster, EmbeddedOptions};
use store::summaries::{self, keys, SummaryConfig};
use store::testing::TestDb;

fn config(interval: Duration) -> SummaryConfig {
    SummaryConfig {
        window: Duration::days(7),
        retention: Duration::days(7),
        refresh_interval: interval,
    }
}

async fn cron_job(db: &TestDb) -> Option<(String, String, String)> {
    let admin = store::db::connect(&TestDb::admin_url()).await.unwrap();
    admin
        .query_opt(
            "SELECT schedule, command, database FROM cron.job WHERE jobname = $1",
            &[&store::cron::job_name(&db.name)],
        )
        .await
        .unwrap()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
}

#[tokio::test]
async fn pg_cron_job_follows_the_settings_and_refreshes_by_itself() {
    assert!(
        TestDb::server_has_pg_cron(),
        "this test needs pg_cron: install postgresql-15-cron (scripts/ensure-deps does)"
    );
    let db = TestDb::migrated().await;
    support::seed(&db, 500, 1, 13).await;
    let report = store::setup::run(&db.url, &config(Duration::minutes(1)), true)
        .await
        .expect("setup");
    match &report.cron {
        CronStatus::Scheduled { schedule, .. } => assert_eq!(schedule, "* * * * *"),
        other => panic!("expected a pg_cron job, got {other:?}"),
    }
    let (schedule, command, database) = cron_job(&db).await.expect("job exists");
    assert_eq!(schedule, "* * * * *");
    assert_eq!(command, "CALL srql_refresh_summaries()");
    assert_eq!(database, db.name);
    let client = db.client().await;
    assert_eq!(
        summaries::get_setting(&client, keys::REFRESH_SCHEDULER)
            .await
            .unwrap()
            .as_deref(),
        Some("pg_cron")
    );

    // The service scheduler (as the writer role, as in `srql serve`) leaves refreshing
    // to pg_cron...
    let tick = server::scheduler::tick(&db.writer_url()).await.unwrap();
    assert!(tick.refresh.is_none());
    // ...which refreshes by itself within a minute or so.
    let mut cron_runs = 0i64;
    for _ in 0..100 {
        cron_runs = client
            .query_one(
                "SELECT count(*) FROM srql_refresh_runs WHERE method = 'concurrently' AND outcome = 'ok'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if cron_runs > 0 {
            break;
        }
        tokio::time::sleep(StdDuration::from_secs(1)).await;
    }
    assert!(cron_runs > 0, "pg_cron did not refresh within 100 s");

    // A changed settings row reaches the job at the next scheduler round, no restart.
    summaries::set_setting(&client, keys::REFRESH_INTERVAL_SECS, "300")
        .await
        .unwrap();
    // pg_cron lets only superusers manage jobs: the writer's round leaves the job be...
    server::scheduler::tick(&db.writer_url()).await.unwrap();
    assert_eq!(cron_job(&db).await.unwrap().0, "* * * * *");
    // ...and a superuser's round (or `srql migrate`) moves it.
    server::scheduler::tick(&db.url).await.unwrap();
    assert_eq!(cron_job(&db).await.unwrap().0, "*/5 * * * *");

    let admin = store::db::connect(&TestDb::admin_url()).await.unwrap();
    admin
        .execute(
            "SELECT cron.unschedule($1)",
            &[&store::cron::job_name(&db.name)],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn without_pg_cron_the_service_scheduler_refreshes() {
    let dir = std::env::temp_dir().join(format!("srql-nocron-{}", std::process::id()));
    let mut opts = EmbeddedOptions::new(&dir);
    opts.pg_cron = false;
    opts.durable = false;
    opts.remove_on_stop = true;
    let cluster = EmbeddedCluster::start(&opts).expect("cluster without pg_cron");
    assert!(!cluster.has_pg_cron());
    let admin = store::db::connect(&cluster.url("postgres")).await.unwrap();
    admin.batch_execute("CREATE DATABASE nocron").await.unwrap();
    let url = cluster.url("nocron");

    let report = store::setup::run(&url, &config(Duration::minutes(2)), true)
        .await
        .expect("setup");
    match &report.cron {
        CronStatus::Unavailable { reason } => assert!(reason.contains("pg_cron"), "{reason}"),
        other => panic!("expected no pg_cron, got {other:?}"),
    }
    let client = store::db::connect(&url).await.unwrap();
    assert_eq!(
        summaries::get_setting(&client, keys::REFRESH_SCHEDULER)
            .await
            .unwrap()
            .as_deref(),
        Some("service")
    );
    let tick = server::scheduler::tick(&url).await.unwrap();
    let run = tick.refresh.expect("the service refreshes");
    assert_eq!(run.outcome, store::summaries::RunOutcome::Ok, "{run:?}");
    assert_eq!(tick.interval, Duration::minutes(2));
}
