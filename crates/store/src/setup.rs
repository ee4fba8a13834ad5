//! `srql migrate`: everything a database needs, in order, idempotently.

use chrono::{Duration, Utc};

use crate::cron::{self, CronStatus};
use crate::db::{self, DbError};
use crate::distributed::{self, Distribution};
use crate::summaries::{self, keys, BackfillProgress, Maintenance, SummaryConfig, SummaryMode};

#[derive(Debug, Clone, PartialEq)]
pub struct SetupReport {
    pub migrations_applied: Vec<i32>,
    /// The summary relation (view or table) was built or rebuilt.
    pub view_built: bool,
    pub mode: SummaryMode,
    pub cron: CronStatus,
    /// The database runs distributed on Citus ([`crate::distributed`]).
    pub distributed: bool,
}

/// [`run_with`] in materialized-view mode, without progress display.
pub async fn run(
    url: &str,
    cfg: &SummaryConfig,
    use_pg_cron: bool,
) -> Result<SetupReport, DbError> {
    run_with(url, cfg, &Maintenance::default(), use_pg_cron, &mut |_| {}).await
}

/// Migrations, partitions for the retention period, the summary relation `maintenance`
/// asks for (a backfill reports to `progress`), and who maintains it: in view mode
/// pg_cron when `use_pg_cron` and available, else the service scheduler; in incremental
/// mode always the service scheduler (any pg_cron job is removed).
pub async fn run_with(
    url: &str,
    cfg: &SummaryConfig,
    maintenance: &Maintenance,
    use_pg_cron: bool,
    progress: &mut (dyn FnMut(BackfillProgress) + Send),
) -> Result<SetupReport, DbError> {
    run_distributed(url, cfg, maintenance, use_pg_cron, progress, None).await
}

/// [`run_with`], distributed when `distribution` asks for it or the database is a
/// Citus coordinator with workers ([`crate::distributed::prepare`]).
pub async fn run_distributed(
    url: &str,
    cfg: &SummaryConfig,
    maintenance: &Maintenance,
    use_pg_cron: bool,
    progress: &mut (dyn FnMut(BackfillProgress) + Send),
    distribution: Option<Distribution>,
) -> Result<SetupReport, DbError> {
    let mut client = db::connect(url).await?;
    let mut migrations_applied = crate::migrate::run(&mut client).await?;
    let distributed_steps = distributed::prepare(&mut client, distribution, maintenance).await?;
    let distributed = distributed_steps.is_some();
    migrations_applied.extend(distributed_steps.unwrap_or_default());
    if let Some(enabled) = crate::span_indexes::wanted_from_env()? {
        let changed = crate::span_indexes::set(&client, enabled).await?;
        if changed > 0 {
            tracing::info!(enabled, changed, "span search indexes switched");
        }
    }
    let now = Utc::now();
    crate::partitions::ensure(&client, now - cfg.retention, now).await?;
    crate::incremental::upkeep(&client, cfg.retention).await?;
    let view_built = if distributed {
        distributed::ensure_summaries(&mut client, cfg, maintenance).await?
    } else {
        summaries::ensure(&mut client, cfg, maintenance, progress).await?
    };
    // Partitions, the summary view or table and the functions made above (or by a
    // superuser since the last run) go to the owner role, so the writer can maintain them.
    crate::roles::adopt_objects(&client).await?;
    let cron = match maintenance.mode {
        SummaryMode::Incremental => {
            if cron::unschedule(&client, url).await? {
                tracing::info!("pg_cron refresh job removed: the service scheduler drains");
            }
            CronStatus::Unavailable {
                reason: format!(
                    "incremental mode: the service scheduler drains every {} ms (pg_cron counts whole minutes)",
                    maintenance.drain_interval.num_milliseconds()
                ),
            }
        }
        SummaryMode::MaterializedView if use_pg_cron => {
            cron::schedule(&client, url, cfg.refresh_interval).await?
        }
        SummaryMode::MaterializedView => CronStatus::Unavailable {
            reason: "pg_cron disabled by configuration".into(),
        },
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
        CronStatus::Unavailable { reason } if maintenance.mode == SummaryMode::Incremental => {
            tracing::info!(reason, "summary drains run in the service scheduler");
            "service"
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
        mode: maintenance.mode,
        cron,
        distributed,
    })
}

/// The summary mode of the database at `url` as it is, for a command not told which: a
/// switch to incremental mode that was interrupted resumes; otherwise the mode its
/// `otel_trace_summaries` shows (a materialized view, made by an older `srql` or by
/// ServiceRadar's own schema, stays one); a database without summaries gets
/// [`NEW_DATABASE_MODE`](crate::settings::NEW_DATABASE_MODE).
pub async fn mode_as_it_is(url: &str) -> Result<SummaryMode, DbError> {
    let client = db::connect(url).await?;
    let switching = match crate::incremental::relkind(&client, "srql_settings").await? {
        Some(_) => summaries::get_setting(&client, keys::BACKFILL)
            .await?
            .is_some(),
        None => false,
    };
    if switching {
        return Ok(SummaryMode::Incremental);
    }
    Ok(
        match crate::incremental::relkind(&client, "otel_trace_summaries")
            .await?
            .as_deref()
        {
            Some("m") => SummaryMode::MaterializedView,
            Some(_) => SummaryMode::Incremental,
            None => crate::settings::NEW_DATABASE_MODE,
        },
    )
}

/// Parses `500ms`, `30s`, `2m`, `7d`, `12h` (and a bare number of seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("invalid duration `{s}`: expected e.g. 500ms, 30s, 2m, 12h, 7d"))?;
    let d = match unit {
        "ms" => Duration::milliseconds(n),
        "" | "s" => Duration::seconds(n),
        "m" => Duration::minutes(n),
        "h" => Duration::hours(n),
        "d" => Duration::days(n),
        _ => {
            return Err(format!(
                "invalid duration `{s}`: unit must be ms, s, m, h or d"
            ))
        }
    };
    if n == 0 {
        return Err(format!("invalid duration `{s}`: must be positive"));
    }
    Ok(d)
}
