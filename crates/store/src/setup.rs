//! `srql migrate`: everything a database needs, in order, idempotently.

use chrono::{Duration, Utc};

use crate::cron::{self, CronStatus};
use crate::db::{self, DbError};
use crate::summaries::{self, keys, SummaryConfig};

#[derive(Debug, Clone, PartialEq)]
pub struct SetupReport {
    pub migrations_applied: Vec<i32>,
    pub view_built: bool,
    pub cron: CronStatus,
}

/// Migrations, partitions for the retention period, the summary view, and its refresh
/// schedule (pg_cron when `use_pg_cron` and available, else the service scheduler).
pub async fn run(
    url: &str,
    cfg: &SummaryConfig,
    use_pg_cron: bool,
) -> Result<SetupReport, DbError> {
    let mut client = db::connect(url).await?;
    let migrations_applied = crate::migrate::run(&mut client).await?;
    let now = Utc::now();
    crate::partitions::ensure(&client, now - cfg.retention, now).await?;
    crate::partitions::upkeep(&client, cfg.retention).await?;
    let view_built = summaries::ensure_view(&mut client, cfg).await?;
    let cron = if use_pg_cron {
        cron::schedule(&client, url, cfg.refresh_interval).await?
    } else {
        CronStatus::Unavailable {
            reason: "pg_cron disabled by configuration".into(),
        }
    };
    let scheduler = match &cron {
        CronStatus::Scheduled {
            job,
            schedule,
            cron_database,
        } => {
            tracing::info!(
                job,
                schedule,
                cron_database,
                "summary refresh scheduled with pg_cron"
            );
            "pg_cron"
        }
        CronStatus::Unavailable { reason } => {
            tracing::warn!(
                reason,
                interval_secs = cfg.refresh_interval.num_seconds(),
                "NOTICE: pg_cron is not available; the service's own scheduler will refresh the summaries"
            );
            "service"
        }
    };
    summaries::set_setting(&client, keys::REFRESH_SCHEDULER, scheduler).await?;
    Ok(SetupReport {
        migrations_applied,
        view_built,
        cron,
    })
}

/// Parses `30s`, `2m`, `7d`, `12h` (and a bare number of seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("invalid duration `{s}`: expected e.g. 30s, 2m, 12h, 7d"))?;
    let d = match unit {
        "" | "s" => Duration::seconds(n),
        "m" => Duration::minutes(n),
        "h" => Duration::hours(n),
        "d" => Duration::days(n),
        _ => return Err(format!("invalid duration `{s}`: unit must be s, m, h or d")),
    };
    if n == 0 {
        return Err(format!("invalid duration `{s}`: must be positive"));
    }
    Ok(d)
}
