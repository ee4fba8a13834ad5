//! Partition upkeep for `otel_traces`: days created ahead of time, whole days dropped past
//! retention. The work happens in SQL functions (migrations 0001, 0010) so any scheduler can call
//! them; this is the typed entry point.

use chrono::{DateTime, Duration, Utc};
use tokio_postgres::Client;

use crate::db::DbError;

/// Days of partitions kept ready ahead of now.
pub const DAYS_AHEAD: i64 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpkeepReport {
    pub created: i32,
    pub dropped: i32,
}

/// Ensures partitions for every UTC day in `[from, to]`.
pub async fn ensure(
    client: &Client,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<i32, DbError> {
    let row = client
        .query_one("SELECT srql_ensure_partitions($1, $2)", &[&from, &to])
        .await?;
    Ok(row.get(0))
}

/// Regular upkeep: the next [`DAYS_AHEAD`] days exist, days with rows stranded in the
/// default partition get their own partition, expired days are dropped.
///
/// Partitions are only ever created inside the horizon [now - retention, now +
/// `DAYS_AHEAD` days]: rows the default partition holds for days past it (written
/// directly, or before the receivers refused far-future spans) stay there, so whoever
/// writes rows cannot decide how many partitions exist. Each such day is rescued once
/// the horizon reaches it.
pub async fn upkeep(client: &Client, retention: Duration) -> Result<UpkeepReport, DbError> {
    let now = Utc::now();
    let horizon = now + Duration::days(DAYS_AHEAD);
    let mut created = ensure(client, now, horizon).await?;
    let stranded = client
        .query(
            "SELECT DISTINCT date_trunc('day', timestamp AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
             FROM otel_traces_default
             WHERE timestamp >= now() - $1::text::interval AND timestamp <= $2",
            &[&pg_interval(retention), &horizon],
        )
        .await?;
    for row in stranded {
        let day: DateTime<Utc> = row.get(0);
        created += ensure(client, day, day).await?;
    }
    let beyond: i64 = client
        .query_one(
            "SELECT count(*) FROM otel_traces_default WHERE timestamp > $1",
            &[&horizon],
        )
        .await?
        .get(0);
    if beyond > 0 {
        tracing::warn!(
            rows = beyond,
            "rows dated past the partition horizon stay in the default partition"
        );
    }
    let dropped: i32 = client
        .query_one(
            "SELECT srql_drop_expired_partitions($1::text::interval)",
            &[&pg_interval(retention)],
        )
        .await?
        .get(0);
    if created > 0 || dropped > 0 {
        tracing::info!(created, dropped, "partition upkeep");
    }
    Ok(UpkeepReport { created, dropped })
}

/// Partition names of `otel_traces`, oldest first (the default partition excluded).
pub async fn list(client: &Client) -> Result<Vec<String>, DbError> {
    Ok(client
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'otel_traces'::regclass AND c.relname <> 'otel_traces_default'
             ORDER BY c.relname",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// The name of the day partition holding `day`, from the SQL helper that every function
/// of ours names partitions with (migration 0010), so the rule has one home.
pub async fn partition_name(
    client: &impl tokio_postgres::GenericClient,
    day: chrono::NaiveDate,
) -> Result<String, DbError> {
    let start = day.and_time(chrono::NaiveTime::MIN).and_utc();
    Ok(client
        .query_one("SELECT srql_partition_name($1)", &[&start])
        .await?
        .get(0))
}

/// An interval as text PostgreSQL parses (`'604800 seconds'`): intervals are bound as text
/// because tokio-postgres has no native interval type.
pub fn pg_interval(d: Duration) -> String {
    format!("{} seconds", d.num_seconds())
}
