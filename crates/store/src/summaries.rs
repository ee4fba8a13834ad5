//! The `otel_trace_summaries` relation: a materialized view refreshed as a whole, or (in
//! incremental mode, see [`crate::incremental`]) a table kept fresh from a log of touched
//! traces. Creation, refresh, settings, freshness, and the catalog the planner needs.

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
    /// `materialized_view` or `incremental` ([`super::SummaryMode`]).
    pub const SUMMARY_MODE: &str = "summary_mode";
    /// Incremental mode: how often the service scheduler drains the log.
    pub const DRAIN_INTERVAL_MS: &str = "drain_interval_ms";
    /// Incremental mode: log entries claimed per drain transaction (SQL default 20000).
    pub const DRAIN_BATCH_SIZE: &str = "drain_batch_size";
    /// Incremental mode: a drain stops starting batches after this long (SQL default 5).
    pub const DRAIN_MAX_SECS: &str = "drain_max_secs";
    /// Progress of an unfinished backfill of the summary table, so it can resume.
    pub const BACKFILL: &str = "summary_backfill";
}

/// How the summaries are maintained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SummaryMode {
    /// A materialized view refreshed as a whole (`REFRESH ... CONCURRENTLY`).
    #[default]
    MaterializedView,
    /// A table; only traces touched since the last drain are recomputed.
    Incremental,
}

impl SummaryMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SummaryMode::MaterializedView => "materialized_view",
            SummaryMode::Incremental => "incremental",
        }
    }
}

impl std::str::FromStr for SummaryMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "materialized_view" => Ok(SummaryMode::MaterializedView),
            "incremental" => Ok(SummaryMode::Incremental),
            other => Err(format!(
                "unknown summary mode `{other}`: expected `materialized_view` or `incremental`"
            )),
        }
    }
}

/// The maintenance choice, beside [`SummaryConfig`] (which every mode shares).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Maintenance {
    pub mode: SummaryMode,
    /// Incremental mode: the service scheduler's drain period. pg_cron counts whole
    /// minutes, so in incremental mode the service drains and the pg_cron job is removed.
    pub drain_interval: Duration,
}

impl Default for Maintenance {
    fn default() -> Self {
        Self {
            mode: SummaryMode::MaterializedView,
            drain_interval: Duration::seconds(1),
        }
    }
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

/// The maintenance mode and drain period as stored, with defaults for anything unset.
pub async fn stored_maintenance(client: &Client) -> Result<Maintenance, DbError> {
    let d = Maintenance::default();
    let mode = match get_setting(client, keys::SUMMARY_MODE).await? {
        Some(v) => v.parse().unwrap_or_else(|e: String| {
            tracing::warn!(error = %e, "ignoring the stored summary mode");
            d.mode
        }),
        None => d.mode,
    };
    let drain_interval = get_setting(client, keys::DRAIN_INTERVAL_MS)
        .await?
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|ms| *ms > 0)
        .map(Duration::milliseconds)
        .unwrap_or(d.drain_interval);
    Ok(Maintenance {
        mode,
        drain_interval,
    })
}

/// A backfill step, for progress display: `done` of `total` chunks (days of trace end
/// time), `rows` summary rows written so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackfillProgress {
    pub done: u64,
    pub total: u64,
    pub rows: u64,
    /// The chunks done before this call, when resuming an interrupted backfill.
    pub resumed_from: u64,
}

/// [`ensure`] in materialized-view mode, without progress: the seed's design.
pub async fn ensure_view(client: &mut Client, cfg: &SummaryConfig) -> Result<bool, DbError> {
    ensure(client, cfg, &Maintenance::default(), &mut |_| {}).await
}

/// Stores `cfg` and `maintenance`, and makes sure the summary relation is what they ask
/// for, building it when the window or mode changed. Returns whether it built anything.
///
/// A view rebuild fills a new view beside the old relation and swaps them in one
/// transaction; a switch to incremental mode backfills a new table beside the old
/// relation (resumable, reporting to `progress`) and swaps likewise. Readers never see a
/// missing or empty relation.
pub async fn ensure(
    client: &mut Client,
    cfg: &SummaryConfig,
    maintenance: &Maintenance,
    progress: &mut (dyn FnMut(BackfillProgress) + Send),
) -> Result<bool, DbError> {
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
    set_setting(
        client,
        keys::DRAIN_INTERVAL_MS,
        &maintenance
            .drain_interval
            .num_milliseconds()
            .max(1)
            .to_string(),
    )
    .await?;
    // Both modes get it: it costs nothing, and a later switch finds it current.
    crate::incremental::install_apply_function(client).await?;
    match maintenance.mode {
        SummaryMode::Incremental => {
            crate::incremental::ensure_table(client, cfg.window, progress).await
        }
        SummaryMode::MaterializedView => {
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
            let built = result?;
            // Leaving incremental mode (or a backfill that never finished): nobody drains
            // the log any more, so stop feeding it.
            crate::incremental::disable(client).await?;
            Ok(built)
        }
    }
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
    // Coming from incremental mode, the current relation is a table.
    let drop_current = crate::incremental::drop_current_sql(client).await?;
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
         {drop_current}
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
    // The refresh procedure reads the mode: it must flip with the relation.
    tx.execute(
        "INSERT INTO srql_settings (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
        &[&keys::SUMMARY_MODE, &SummaryMode::MaterializedView.as_str()],
    )
    .await?;
    tx.commit().await?;
    tracing::info!(window_secs, elapsed = ?started.elapsed(), "summary view built");
    Ok(true)
}

/// One row of `srql_refresh_runs`.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct RefreshRun {
    pub id: i64,
    pub method: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub snapshot_at: Option<DateTime<Utc>>,
    pub outcome: String,
    pub rows: Option<i64>,
    pub error: Option<String>,
    /// Incremental runs: the earliest trace end time the table is complete for.
    pub covers_from: Option<DateTime<Utc>>,
    /// Incremental runs: arrival-to-summary lag over the log entries applied.
    pub lag_p50_secs: Option<f64>,
    pub lag_p99_secs: Option<f64>,
    pub lag_max_secs: Option<f64>,
    /// Incremental runs: log entries left waiting at the end.
    pub pending: Option<i64>,
}

impl RefreshRun {
    pub fn duration(&self) -> Option<Duration> {
        self.finished_at.map(|f| f - self.started_at)
    }
}

const RUN_COLUMNS: &str =
    "id, method, started_at, finished_at, snapshot_at, outcome, rows, error, \
     covers_from, lag_p50_secs, lag_p99_secs, lag_max_secs, pending";

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
        covers_from: r.get(8),
        lag_p50_secs: r.get(9),
        lag_p99_secs: r.get(10),
        lag_max_secs: r.get(11),
        pending: r.get(12),
    }
}

/// What `srql_refresh_summaries` is asked for; in incremental mode `Concurrently` drains
/// the log and `Full` recomputes every trace in the window in place (a resync).
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
            let snapshot = last_ok.and_then(|r| r.snapshot_at.map(|s| (s, r.covers_from)));
            match (populated, snapshot) {
                (true, Some((as_of, run_covers_from))) => {
                    // A view holds the window as of its snapshot. The table's rows are
                    // pruned at each drain's own cutoff, which may be later than
                    // as_of - window while arrivals are still pending.
                    let covers_from = match (kind, run_covers_from) {
                        (SummaryKind::Table, Some(c)) => c.max(as_of - cfg.window),
                        _ => as_of - cfg.window,
                    };
                    SummaryState::Ready {
                        kind,
                        covers_from,
                        as_of,
                    }
                }
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

/// How fresh the summaries are, for `/healthz` and `/metrics`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Freshness {
    pub mode: SummaryMode,
    /// Seconds since the span data the summaries reflect (the last successful run's
    /// `snapshot_at`). In incremental mode: every span that arrived longer ago than this
    /// is in its trace's summary row.
    pub age_seconds: Option<f64>,
    /// Incremental mode: log entries (touched traces) not yet applied.
    pub pending_entries: i64,
    /// Incremental mode: how long the oldest of them has waited.
    pub oldest_pending_seconds: Option<f64>,
    /// Incremental mode: arrival-to-summary lag measured by the last drain that applied
    /// anything (quantiles over its log entries).
    pub last_lag: Option<DrainLag>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DrainLag {
    pub p50_seconds: f64,
    pub p99_seconds: f64,
    pub max_seconds: f64,
    /// When that drain finished.
    pub measured_at: Option<DateTime<Utc>>,
}

/// Reads [`Freshness`]: a few small queries, cheap enough for every scrape.
pub async fn freshness(client: &Client) -> Result<Freshness, DbError> {
    let mode = stored_maintenance(client).await?.mode;
    let (last_ok, _) = last_runs(client).await?;
    let now = Utc::now();
    let secs = |d: Duration| d.num_milliseconds() as f64 / 1000.0;
    let age_seconds = last_ok
        .as_ref()
        .and_then(|r| r.snapshot_at)
        .map(|s| secs(now - s).max(0.0));
    let pending = client
        .query_one("SELECT count(*), min(logged_at) FROM srql_summary_log", &[])
        .await?;
    let oldest: Option<DateTime<Utc>> = pending.get(1);
    let lag = client
        .query_opt(
            "SELECT lag_p50_secs, lag_p99_secs, lag_max_secs, finished_at FROM srql_refresh_runs
             WHERE outcome = 'ok' AND lag_max_secs IS NOT NULL
             ORDER BY finished_at DESC LIMIT 1",
            &[],
        )
        .await?;
    Ok(Freshness {
        mode,
        age_seconds,
        pending_entries: pending.get(0),
        oldest_pending_seconds: oldest.map(|o| secs(now - o).max(0.0)),
        last_lag: lag.map(|r| DrainLag {
            p50_seconds: r.get::<_, Option<f64>>(0).unwrap_or_default(),
            p99_seconds: r.get::<_, Option<f64>>(1).unwrap_or_default(),
            max_seconds: r.get::<_, Option<f64>>(2).unwrap_or_default(),
            measured_at: r.get(3),
        }),
    })
}
