//! The pg_cron job that refreshes the summaries.
//!
//! pg_cron lives in one database per cluster (`cron.database_name`), often not ours, so
//! the job is created from there with `cron.schedule_in_database`. In incremental mode
//! there is no job: pg_cron counts whole minutes and the summaries should be seconds
//! fresh, so the service scheduler drains instead.

use chrono::Duration;
use tokio_postgres::Client;

use crate::db::{self, DbError};

/// What scheduling found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CronStatus {
    /// The job exists with this schedule.
    Scheduled {
        job: String,
        schedule: String,
        cron_database: String,
    },
    /// pg_cron is not loaded in this cluster; the service scheduler must refresh.
    Unavailable { reason: String },
}

pub fn job_name(database: &str) -> String {
    format!("srql_refresh_summaries_{database}")
}

/// A cron schedule for `interval` (pg_cron 1.4 counts in whole minutes).
pub fn schedule_for(interval: Duration) -> String {
    let minutes = interval.num_minutes().max(1);
    match minutes {
        1 => "* * * * *".to_string(),
        m if m < 60 && 60 % m == 0 => format!("*/{m} * * * *"),
        m if m % 60 == 0 && 24 % (m / 60) == 0 => format!("0 */{} * * *", m / 60),
        // Not a divisor of an hour or a day: run at the nearest divisor below.
        m if m < 60 => {
            let d = (1..=m).rev().find(|d| 60 % d == 0).unwrap_or(1);
            format!("*/{d} * * * *")
        }
        _ => "0 * * * *".to_string(),
    }
}

/// A connection to pg_cron's database, with our database's name, when pg_cron is loaded.
async fn cron_session(
    client: &Client,
    url: &str,
) -> Result<Option<(Client, String, String)>, DbError> {
    let row = client
        .query_one(
            "SELECT current_database()::text, current_setting('cron.database_name', true),
                    current_setting('shared_preload_libraries', true)",
            &[],
        )
        .await?;
    let database: String = row.get(0);
    let cron_db: Option<String> = row.get(1);
    let preload: Option<String> = row.get(2);
    let loaded = preload.is_some_and(|p| p.split(',').any(|l| l.trim() == "pg_cron"));
    let Some(cron_db) = cron_db.filter(|_| loaded) else {
        return Ok(None);
    };
    let config = db::url_for_database(url, &cron_db)?;
    let (cron, conn) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(DbError::Connect)?;
    tokio::spawn(conn);
    Ok(Some((cron, database, cron_db)))
}

/// Creates or updates the refresh job for the database `client` is connected to.
pub async fn schedule(
    client: &Client,
    url: &str,
    interval: Duration,
) -> Result<CronStatus, DbError> {
    let Some((cron, database, cron_db)) = cron_session(client, url).await? else {
        return Ok(CronStatus::Unavailable {
            reason: "pg_cron is not in shared_preload_libraries".into(),
        });
    };
    if !may_manage_jobs(&cron).await? {
        return Ok(CronStatus::Unavailable {
            reason: format!(
                "{} may not manage pg_cron jobs (pg_cron lets superusers only); a superuser's `srql migrate` does",
                current_user(&cron).await?
            ),
        });
    }
    cron.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
        .await?;
    let job = job_name(&database);
    let schedule = schedule_for(interval);
    // Scheduling an existing job name updates it in place.
    cron.query_one(
        "SELECT cron.schedule_in_database($1, $2, 'CALL srql_refresh_summaries()', $3)",
        &[&job, &schedule, &database],
    )
    .await?;
    Ok(CronStatus::Scheduled {
        job,
        schedule,
        cron_database: cron_db,
    })
}

/// The job's schedule as pg_cron has it, if any.
pub async fn current_schedule(
    url: &str,
    cron_db: &str,
    database: &str,
) -> Result<Option<String>, DbError> {
    let config = db::url_for_database(url, cron_db)?;
    let (cron, conn) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(DbError::Connect)?;
    tokio::spawn(conn);
    Ok(cron
        .query_opt(
            "SELECT schedule FROM cron.job WHERE jobname = $1",
            &[&job_name(database)],
        )
        .await?
        .map(|r| r.get(0)))
}

/// Removes this database's refresh job if pg_cron is loaded and the job exists. In
/// incremental mode the service scheduler drains every second or so, and pg_cron (1.4)
/// counts whole minutes. Returns whether a job was removed.
pub async fn unschedule(client: &Client, url: &str) -> Result<bool, DbError> {
    let Some((cron, database, _)) = cron_session(client, url).await? else {
        return Ok(false);
    };
    let installed: bool = cron
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron')",
            &[],
        )
        .await?
        .get(0);
    if !installed || !may_manage_jobs(&cron).await? {
        return Ok(false);
    }
    let removed = cron
        .query(
            "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = $1",
            &[&job_name(&database)],
        )
        .await?;
    Ok(!removed.is_empty())
}

/// Whether this session may create, change and remove jobs: pg_cron (1.4) grants its
/// functions to superusers only, so the service's writer role (no superuser) leaves the
/// job to `srql migrate` run by a superuser.
async fn may_manage_jobs(cron: &Client) -> Result<bool, DbError> {
    Ok(cron
        .query_one(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'cron')
                 THEN has_schema_privilege('cron', 'USAGE')
                      AND EXISTS (SELECT 1 FROM pg_proc p
                                  JOIN pg_namespace n ON n.oid = p.pronamespace
                                  WHERE n.nspname = 'cron' AND p.proname = 'schedule_in_database'
                                    AND has_function_privilege(p.oid, 'EXECUTE'))
                 ELSE (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
             END",
            &[],
        )
        .await?
        .get(0))
}

async fn current_user(client: &Client) -> Result<String, DbError> {
    Ok(client
        .query_one("SELECT current_user::text", &[])
        .await?
        .get(0))
}
