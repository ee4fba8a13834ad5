//! The `otel_trace_summaries` materialized view: creation, refresh, scheduling, and the
//! catalog the planner needs.

use chrono::{DateTime, Duration, Utc};
use srql_plan::{Catalog, SummaryKind, SummaryState};
use tokio_postgres::Client;

use crate::db::DbError;
use crate::migrate::LOCK_CLASS;

/// Advisory lock (with [`LOCK_CLASS`]) held by whoever refreshes or rebuilds the summaries.
/// The refresh procedure uses the same pair.
pub const LOCK_REFRESH: i32 = 1;

/// Settings keys in `srql_settings`.
pub mod keys {
    pub const WINDOW_SECS: &str = "summary_window_secs";
    pub const RETENTION_SECS: &str = "retention_secs";
    pub const REFRESH_INTERVAL_SECS: &str = "refresh_interval_secs";
    /// `pg_cron` or `service`: who runs the periodic refresh.
    pub const REFRESH_SCHEDULER: &str = "refresh_scheduler";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SummaryConfig {
    pub window: Duration,
    pub retention: Duration,
    pub refresh_interval: Duration,
}

impl Default for SummaryConfig {
    fn default() -> Self {
        Self {
            window: Duration::days(7),
            retention: Duration::days(7),
            refresh_interval: Duration::minutes(2),
        }
    }
}

pub async fn get_setting(client: &Client, key: &str) -> Result<Option<String>, DbError> {
    Ok(client
        .query_opt("SELECT value FROM srql_settings WHERE key = $1", &[&key])
        .await?
        .map(|r| r.get(0)))
}

pub async fn set_setting(client: &Client, key: &str, value: &str) -> Result<(), DbError> {
    client
        .execute(
            "INSERT INTO srql_settings (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
             WHERE srql_settings.value IS DISTINCT FROM EXCLUDED.value",
            &[&key, &value],
        )
        .await?;
    Ok(())
}

async fn setting_secs(client: &Client, key: &str) -> Result<Option<Duration>, DbError> {
    Ok(get_setting(client, key)
        .await?
        .and_then(|v| v.parse::<i64>().ok())
        .map(Duration::seconds))
}

/// The configuration as stored in the database (the source of truth at run time), with
/// defaults for anything unset.
pub async fn stored_config(client: &Client) -> Result<SummaryConfig, DbError> {
    let d = SummaryConfig::default();
    Ok(SummaryConfig {
        window: setting_secs(client, keys::WINDOW_SECS)
            .await?
            .unwrap_or(d.window),
        retention: setting_secs(client, keys::RETENTION_SECS)
            .await?
            .unwrap_or(d.retention),
        refresh_interval: setting_secs(client, keys::REFRESH_INTERVAL_SECS)
            .await?
            .unwrap_or(d.refresh_interval),
    })
}

/// Stores `cfg` and makes sure the view exists with its window, rebuilding it when the
/// window changed. A rebuild fills a new view beside the old one and swaps them in one
/// transaction, so readers never see a missing or empty relation.
pub async fn ensure_view(client: &mut Client, cfg: &SummaryConfig) -> Result<bool, DbError> {
    for (key, value) in [
        (keys::WINDOW_SECS, cfg.window.num_seconds()),
        (keys::RETENTION_SECS, cfg.retention.num_seconds()),
        (
            keys::REFRESH_INTERVAL_SECS,
            cfg.refresh_interval.num_seconds(),
        ),
    ] {
        set_setting(client, key, &value.to_string()).await?;
    }
    client
        .execute(
            "SELECT pg_advisory_lock($1, $2)",
            &[&LOCK_CLASS, &LOCK_REFRESH],
        )
        .await?;
    let result = build_if_needed(client, cfg.window).await;
    client
        .execute(
            "SELECT pg_advisory_unlock($1, $2)",
            &[&LOCK_CLASS, &LOCK_REFRESH],
        )
        .await?;
    result
}

async fn build_if_needed(client: &mut Client, window: Duration) -> Result<bool, DbError> {
    let window_secs = window.num_seconds();
    let current: Option<String> = client
        .query_opt(
            "SELECT obj_description(to_regclass('otel_trace_summaries'), 'pg_class')",
            &[],
        )
        .await?
        .and_then(|r| r.get(0));
    let marker = format!("srql summaries; window_secs={window_secs}");
    if current.as_deref() == Some(marker.as_str()) {
        return Ok(false);
    }
    let started = std::time::Instant::now();
    let tx = client.transaction().await?;
    // The window is an integer we format ourselves; DDL cannot take bind parameters.
    tx.batch_execute(&format!(
        "DROP MATERIALIZED VIEW IF EXISTS otel_trace_summaries_next;
         CREATE MATERIALIZED VIEW otel_trace_summaries_next AS
         {};
         CREATE UNIQUE INDEX otel_trace_summaries_next_trace_id ON otel_trace_summaries_next (trace_id);
         CREATE INDEX otel_trace_summaries_next_ts ON otel_trace_summaries_next (timestamp DESC);
         CREATE INDEX otel_trace_summaries_next_root_svc_ts
             ON otel_trace_summaries_next (root_service_name, timestamp DESC);
         CREATE INDEX otel_trace_summaries_next_duration
             ON otel_trace_summaries_next (duration_ms DESC, trace_id DESC);
         DROP MATERIALIZED VIEW IF EXISTS otel_trace_summaries;
         ALTER MATERIALIZED VIEW otel_trace_summaries_next RENAME TO otel_trace_summaries;
         ALTER INDEX otel_trace_summaries_next_trace_id RENAME TO otel_trace_summaries_trace_id;
         ALTER INDEX otel_trace_summaries_next_ts RENAME TO otel_trace_summaries_ts;
         ALTER INDEX otel_trace_summaries_next_root_svc_ts RENAME TO otel_trace_summaries_root_svc_ts;
         ALTER INDEX otel_trace_summaries_next_duration RENAME TO otel_trace_summaries_duration;
         COMMENT ON MATERIALIZED VIEW otel_trace_summaries IS '{marker}';
         ANALYZE otel_trace_summaries;",
        srql_plan::summary_sql::materialized_view_query(window_secs)
    ))
    .await?;
    // The build is a refresh too: record it so freshness is known from the start.
    tx.execute(
        "INSERT INTO srql_refresh_runs (method, started_at, finished_at, snapshot_at, outcome, rows)
         SELECT 'full', now(), clock_timestamp(), now(), 'ok', count(*) FROM otel_trace_summaries",
        &[],
    )
    .await?;
    tx.commit().await?;
    tracing::info!(window_secs, elapsed = ?started.elapsed(), "summary view built");
    Ok(true)
}

/// One row of `srql_refresh_runs`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RefreshRun {
    pub id: i64,
    pub method: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub snapshot_at: Option<DateTime<Utc>>,
    pub outcome: String,
    pub rows: Option<i64>,
    pub error: Option<String>,
}

impl RefreshRun {
    pub fn duration(&self) -> Option<Duration> {
        self.finished_at.map(|f| f - self.started_at)
    }
}

const RUN_COLUMNS: &str = "id, method, started_at, finished_at, snapshot_at, outcome, rows, error";

fn run_of(r: &tokio_postgres::Row) -> RefreshRun {
    RefreshRun {
        id: r.get(0),
        method: r.get(1),
        started_at: r.get(2),
        finished_at: r.get(3),
        snapshot_at: r.get(4),
        outcome: r.get(5),
        rows: r.get(6),
        error: r.get(7),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshMethod {
    /// `REFRESH MATERIALIZED VIEW CONCURRENTLY`: readers are not blocked.
    Concurrently,
    /// A plain refresh: faster, but blocks readers while it runs.
    Full,
}

impl RefreshMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            RefreshMethod::Concurrently => "concurrently",
            RefreshMethod::Full => "full",
        }
    }
}

/// Runs one refresh through the shared procedure and returns what it recorded.
pub async fn refresh(client: &Client, method: RefreshMethod) -> Result<RefreshRun, DbError> {
    client
        .execute("CALL srql_refresh_summaries($1)", &[&method.as_str()])
        .await?;
    let row = client
        .query_one(
            &format!(
                "SELECT {RUN_COLUMNS} FROM srql_refresh_runs
                 WHERE backend_pid = pg_backend_pid() ORDER BY id DESC LIMIT 1"
            ),
            &[],
        )
        .await?;
    Ok(run_of(&row))
}

/// The most recent successful refresh, and the most recent run of any outcome.
pub async fn last_runs(
    client: &Client,
) -> Result<(Option<RefreshRun>, Option<RefreshRun>), DbError> {
    let ok = client
        .query_opt(
            &format!(
                "SELECT {RUN_COLUMNS} FROM srql_refresh_runs WHERE outcome = 'ok'
                 ORDER BY finished_at DESC LIMIT 1"
            ),
            &[],
        )
        .await?
        .map(|r| run_of(&r));
    let any = client
        .query_opt(
            &format!("SELECT {RUN_COLUMNS} FROM srql_refresh_runs ORDER BY id DESC LIMIT 1"),
            &[],
        )
        .await?
        .map(|r| run_of(&r));
    Ok((ok, any))
}

/// The planner's view of the summaries, read from the database.
pub async fn catalog(
    client: &Client,
    default_limit: u32,
    max_limit: u32,
) -> Result<Catalog, DbError> {
    let rel = client
        .query_opt(
            "SELECT c.relkind::text, c.relispopulated FROM pg_class c
             WHERE c.oid = to_regclass('otel_trace_summaries')",
            &[],
        )
        .await?;
    let cfg = stored_config(client).await?;
    let summaries = match rel {
        None => SummaryState::Missing,
        Some(r) => {
            let kind = match r.get::<_, String>(0).as_str() {
                "m" => SummaryKind::MaterializedView,
                _ => SummaryKind::Table,
            };
            let populated: bool = r.get(1);
            let (last_ok, _) = last_runs(client).await?;
            match (populated, last_ok.and_then(|r| r.snapshot_at)) {
                (true, Some(as_of)) => SummaryState::Ready {
                    kind,
                    covers_from: as_of - cfg.window,
                    as_of,
                },
                _ => SummaryState::Unpopulated { kind },
            }
        }
    };
    Ok(Catalog {
        summaries,
        retention: Some(cfg.retention),
        default_limit,
        max_limit,
    })
}
