//! `srql_settings`: the maintenance configuration stored in the database, which is the
//! source of truth at run time. Every default is defined once, in [`DEFAULTS`]; the SQL
//! side reads the same values through `srql_setting_default` (migration 0007), which a
//! test checks against this table.

use chrono::Duration;
use tokio_postgres::GenericClient;

use crate::db::DbError;

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
    /// Incremental mode: log entries claimed per drain transaction.
    pub const DRAIN_BATCH_SIZE: &str = "drain_batch_size";
    /// Incremental mode: a drain stops starting batches after this long.
    pub const DRAIN_MAX_SECS: &str = "drain_max_secs";
    /// Progress of an unfinished backfill of the summary table, so it can resume.
    pub const BACKFILL: &str = "summary_backfill";
}

/// The value each setting has while unset. Keys without a default here (the scheduler,
/// the backfill progress) mean "nothing yet" when unset.
pub const DEFAULTS: &[(&str, &str)] = &[
    (keys::WINDOW_SECS, "604800"),
    (keys::RETENTION_SECS, "604800"),
    (keys::REFRESH_INTERVAL_SECS, "120"),
    (keys::SUMMARY_MODE, "materialized_view"),
    (keys::DRAIN_INTERVAL_MS, "1000"),
    (keys::DRAIN_BATCH_SIZE, "20000"),
    (keys::DRAIN_MAX_SECS, "5"),
];

/// The default of `key`, if it has one.
pub fn default_of(key: &str) -> Option<&'static str> {
    DEFAULTS.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

fn default_number(key: &str) -> i64 {
    default_of(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("the default of {key} is a number"))
}

/// How the summaries are maintained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SummaryMode {
    /// A materialized view refreshed as a whole (`REFRESH ... CONCURRENTLY`).
    MaterializedView,
    /// A table; only traces touched since the last drain are recomputed.
    Incremental,
}

/// The mode `srql` gives a database that has no summaries yet when `--summary-mode` is
/// not given: the one whose first pages, span searches and on-the-fly queries meet their
/// targets at scale (BENCHMARKS.md). A database that has summaries keeps its mode
/// ([`crate::setup::mode_as_it_is`]).
pub const NEW_DATABASE_MODE: SummaryMode = SummaryMode::Incremental;

/// What an unset `summary_mode` setting means, as the SQL side reads it: a database from
/// before the setting existed, whose summaries are a materialized view. The library's
/// [`Maintenance::default`] (what [`crate::setup::run`] builds) is the same.
impl Default for SummaryMode {
    fn default() -> Self {
        default_of(keys::SUMMARY_MODE)
            .and_then(|v| v.parse().ok())
            .unwrap_or(SummaryMode::MaterializedView)
    }
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
            mode: SummaryMode::default(),
            drain_interval: Duration::milliseconds(default_number(keys::DRAIN_INTERVAL_MS)),
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
            window: Duration::seconds(default_number(keys::WINDOW_SECS)),
            retention: Duration::seconds(default_number(keys::RETENTION_SECS)),
            refresh_interval: Duration::seconds(default_number(keys::REFRESH_INTERVAL_SECS)),
        }
    }
}

pub async fn get_setting(
    client: &impl GenericClient,
    key: &str,
) -> Result<Option<String>, DbError> {
    Ok(client
        .query_opt("SELECT value FROM srql_settings WHERE key = $1", &[&key])
        .await?
        .map(|r| r.get(0)))
}

/// Stores `value` under `key`. Works on a client or inside a transaction, so a setting
/// can change together with what it describes.
pub async fn set_setting(
    client: &impl GenericClient,
    key: &str,
    value: &str,
) -> Result<(), DbError> {
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

pub async fn delete_setting(client: &impl GenericClient, key: &str) -> Result<(), DbError> {
    client
        .execute("DELETE FROM srql_settings WHERE key = $1", &[&key])
        .await?;
    Ok(())
}

async fn setting_secs(client: &impl GenericClient, key: &str) -> Result<Option<Duration>, DbError> {
    Ok(get_setting(client, key)
        .await?
        .and_then(|v| v.parse::<i64>().ok())
        .map(Duration::seconds))
}

/// The configuration as stored, with defaults for anything unset.
pub async fn stored_config(client: &impl GenericClient) -> Result<SummaryConfig, DbError> {
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
pub async fn stored_maintenance(client: &impl GenericClient) -> Result<Maintenance, DbError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = SummaryConfig::default();
        assert_eq!(c.window, Duration::days(7));
        assert_eq!(c.retention, Duration::days(7));
        assert_eq!(c.refresh_interval, Duration::minutes(2));
        let m = Maintenance::default();
        assert_eq!(m.mode, SummaryMode::MaterializedView);
        assert_eq!(m.drain_interval, Duration::seconds(1));
    }
}
