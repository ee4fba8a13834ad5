//! Versioned migrations, embedded in the binary and recorded in `srql_schema_migrations`.
//!
//! Each migration runs in its own transaction under an advisory lock, so concurrent
//! `srql migrate` runs (several instances starting at once) apply each version exactly
//! once. A migration is never edited once released: changes are new versions.

use tokio_postgres::Client;

use crate::db::DbError;
use crate::locks::AdvisoryLock;

pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "otel_traces",
        sql: include_str!("../migrations/0001_otel_traces.sql"),
    },
    Migration {
        version: 2,
        name: "settings_and_refresh_log",
        sql: include_str!("../migrations/0002_settings_and_refresh_log.sql"),
    },
    Migration {
        version: 3,
        name: "refresh_procedure",
        sql: include_str!("../migrations/0003_refresh_procedure.sql"),
    },
    Migration {
        version: 4,
        name: "incremental_summaries",
        sql: include_str!("../migrations/0004_incremental_summaries.sql"),
    },
    Migration {
        version: 5,
        name: "bulk_load_stages",
        sql: include_str!("../migrations/0005_bulk_load_stages.sql"),
    },
    Migration {
        version: 6,
        name: "roles",
        sql: include_str!("../migrations/0006_roles.sql"),
    },
    Migration {
        version: 7,
        name: "maintenance_helpers",
        sql: include_str!("../migrations/0007_maintenance_helpers.sql"),
    },
    Migration {
        version: 8,
        name: "root_span_index",
        sql: include_str!("../migrations/0008_root_span_index.sql"),
    },
    Migration {
        version: 9,
        name: "columnar_sealing",
        sql: include_str!("../migrations/0009_columnar_sealing.sql"),
    },
    Migration {
        version: 10,
        name: "partition_helpers",
        sql: include_str!("../migrations/0010_partition_helpers.sql"),
    },
    Migration {
        version: 11,
        name: "span_search_indexes",
        sql: include_str!("../migrations/0011_span_search_indexes.sql"),
    },
    Migration {
        version: 12,
        name: "span_indexes_per_day",
        sql: include_str!("../migrations/0012_span_indexes_per_day.sql"),
    },
    Migration {
        version: 13,
        name: "span_search_indexes_per_day",
        sql: include_str!("../migrations/0013_span_search_indexes_per_day.sql"),
    },
    Migration {
        version: 16,
        name: "span_attribute_index",
        sql: include_str!("../migrations/0016_span_attribute_index.sql"),
    },
    Migration {
        version: 17,
        name: "trace_extent_lookup",
        sql: include_str!("../migrations/0017_trace_extent_lookup.sql"),
    },
    Migration {
        version: 18,
        name: "drain_run_helpers",
        sql: include_str!("../migrations/0018_drain_run_helpers.sql"),
    },
    Migration {
        version: 20,
        name: "seal_sort_order",
        sql: include_str!("../migrations/0020_seal_sort_order.sql"),
    },
    Migration {
        version: 28,
        name: "analyze_after_plain_refresh",
        sql: include_str!("../migrations/0028_analyze_after_plain_refresh.sql"),
    },
    Migration {
        version: 30,
        name: "attribute_statistics",
        sql: include_str!("../migrations/0030_attribute_statistics.sql"),
    },
    Migration {
        version: 31,
        name: "long_trace_index",
        sql: include_str!("../migrations/0031_long_trace_index.sql"),
    },
    Migration {
        version: 32,
        name: "resources_once",
        sql: include_str!("../migrations/0032_resources_once.sql"),
    },
];

/// Applies pending migrations; returns the versions applied by this call.
pub async fn run(client: &mut Client) -> Result<Vec<i32>, DbError> {
    run_list(client, MIGRATIONS).await
}

/// Applies the pending ones of `list` (the single-node list, or the distributed steps
/// of [`crate::distributed`], numbered after it and recorded in the same table).
pub async fn run_list(client: &mut Client, list: &[Migration]) -> Result<Vec<i32>, DbError> {
    AdvisoryLock::Migrate.acquire(&*client).await?;
    let result = apply_pending(client, list).await;
    AdvisoryLock::Migrate.release(&*client).await?;
    result
}

async fn apply_pending(client: &mut Client, list: &[Migration]) -> Result<Vec<i32>, DbError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS srql_schema_migrations (
                 version    integer PRIMARY KEY,
                 name       text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await?;
    let applied: Vec<i32> = client
        .query("SELECT version FROM srql_schema_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut done = Vec::new();
    for m in list.iter().filter(|m| !applied.contains(&m.version)) {
        let tx = client.transaction().await?;
        tx.batch_execute(m.sql).await?;
        tx.execute(
            "INSERT INTO srql_schema_migrations (version, name) VALUES ($1, $2)",
            &[&m.version, &m.name],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(version = m.version, name = m.name, "migration applied");
        done.push(m.version);
    }
    Ok(done)
}

/// Versions recorded as applied, ascending.
pub async fn applied_versions(client: &Client) -> Result<Vec<i32>, DbError> {
    Ok(client
        .query(
            "SELECT version FROM srql_schema_migrations ORDER BY version",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}
