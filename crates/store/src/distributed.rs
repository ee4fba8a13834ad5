//! Distributed mode on Citus (docs/scale-out.md): `otel_traces` (still partitioned by
//! day), the summary table, its log and extents, all sharded by `trace_id` and
//! co-located, so every trace's spans and summary row live on one worker.
//!
//! Chosen by `SRQL_DISTRIBUTED=citus` / `--distributed citus`, or found: a database with
//! the `citus` extension and at least one registered worker is distributed. The
//! single-node migrations run first, unchanged; the steps here (versions 14 and up, in
//! their own directory) adapt them. Summaries are always the incremental table (Citus
//! has no distributed materialized views), captured by a row trigger on the shards and
//! drained shard by shard on the workers.

use std::str::FromStr;

use tokio_postgres::{Client, GenericClient};

use crate::db::DbError;
use crate::incremental;
use crate::locks::AdvisoryLock;
use crate::migrate::Migration;
use crate::settings::{keys, set_setting, Maintenance, SummaryConfig, SummaryMode};
use crate::summary_indexes;

/// The environment variable that asks for distributed mode (the CLI's `--distributed`).
pub const ENV: &str = "SRQL_DISTRIBUTED";

/// A distributed engine we run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    Citus,
}

impl FromStr for Distribution {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "citus" => Ok(Self::Citus),
            other => Err(format!("unknown distribution `{other}`: expected `citus`")),
        }
    }
}

/// After the single-node list, in the same `srql_schema_migrations`.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 14,
        name: "citus_distribution",
        sql: include_str!("../migrations/distributed/0014_citus_distribution.sql"),
    },
    Migration {
        version: 15,
        name: "citus_drain",
        sql: include_str!("../migrations/distributed/0015_citus_drain.sql"),
    },
    Migration {
        version: 19,
        name: "citus_drain_run_helpers",
        sql: include_str!("../migrations/distributed/0019_citus_drain_run_helpers.sql"),
    },
    Migration {
        version: 29,
        name: "citus_drain_tasks",
        sql: include_str!("../migrations/distributed/0029_citus_drain_tasks.sql"),
    },
    Migration {
        version: 33,
        name: "citus_resources",
        sql: include_str!("../migrations/distributed/0033_citus_resources.sql"),
    },
];

/// `None` without the `citus` extension; otherwise how many active primary workers are
/// registered (the coordinator's own group, 0, is not one).
pub async fn citus_workers(client: &impl GenericClient) -> Result<Option<i64>, DbError> {
    let has_citus: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')",
            &[],
        )
        .await?
        .get(0);
    if !has_citus {
        return Ok(None);
    }
    let workers: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_dist_node
             WHERE groupid <> 0 AND isactive AND noderole = 'primary'",
            &[],
        )
        .await?
        .get(0);
    Ok(Some(workers))
}

/// Whether `otel_traces` is a distributed table.
pub async fn is_distributed(client: &impl GenericClient) -> Result<bool, DbError> {
    if citus_workers(client).await?.is_none() {
        return Ok(false);
    }
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_dist_partition
                            WHERE logicalrelid = to_regclass('otel_traces'))",
            &[],
        )
        .await?
        .get(0))
}

/// Decides whether this database runs distributed (asked for, or a Citus coordinator
/// with workers) and, if so, applies the distributed steps. Refuses, before changing
/// anything, what distributed mode cannot do. Returns `None` for a single-node
/// database, else the distributed steps applied by this call.
pub async fn prepare(
    client: &mut Client,
    requested: Option<Distribution>,
    maintenance: &Maintenance,
) -> Result<Option<Vec<i32>>, DbError> {
    let workers = citus_workers(client).await?;
    if requested.is_none() && workers.unwrap_or(0) == 0 {
        return Ok(None);
    }
    match workers {
        None => {
            return Err(DbError::Unsupported(format!(
                "{ENV}=citus: this database has no `citus` extension. Install Citus on the \
                 coordinator and every worker, run CREATE EXTENSION citus in this database on \
                 each of them, and register the workers (docs/scale-out.md)"
            )))
        }
        Some(0) => {
            return Err(DbError::Unsupported(format!(
                "{ENV}=citus: no worker is registered in this database: on the coordinator run \
                 SELECT citus_set_coordinator_host(...) and SELECT citus_add_node(...) for each \
                 worker (docs/scale-out.md)"
            )))
        }
        Some(_) => {}
    }
    refuse_view_mode(maintenance)?;
    let applied = crate::migrate::run_list(client, MIGRATIONS).await?;
    install_drain_function(client).await?;
    Ok(Some(applied))
}

fn refuse_view_mode(maintenance: &Maintenance) -> Result<(), DbError> {
    if maintenance.mode == SummaryMode::Incremental {
        return Ok(());
    }
    Err(DbError::Unsupported(
        "distributed mode (Citus) has no materialized view summaries: Citus cannot distribute \
         a materialized view. Use incremental mode: --summary-mode incremental \
         (SRQL_SUMMARY_MODE=incremental)"
            .into(),
    ))
}

/// `srql_summary_drain_task(anchor, cutoff, batch_size)`, run on a worker for the shard
/// group that `anchor` (a `srql_drain_anchors` value) hashes into, by 0029's drain: one
/// task of a SELECT over the anchors, on the drain session's cached worker connection.
/// Claims up to `batch_size` log entries of that shard, oldest first; widens the extents
/// of traces with new span times; recomputes each claimed trace from the co-located span
/// shard with the shared select list, reading only within its extent; upserts the rows
/// inside the window and deletes the others. Returns `claimed traces oldest_lag_secs`.
///
/// The extents are the single-node invariant (migration 0004): every span of a trace lies
/// in its extent or in an undrained log entry. The batch's overall bounds are written into
/// the recompute as constants, so PostgreSQL plans only the day partitions they reach
/// (new spans: usually today's), and each trace's own bounds prune per trace at run time.
/// A trace without an extent (older than 0029, whose Citus drain kept none; or one whose
/// extent was pruned) is read over every day, and its extent is then set from its spans.
pub fn drain_task_function_sql() -> String {
    let aggregates = srql_plan::summary_sql::AGGREGATES;
    let cols = incremental::column_list();
    let set = incremental::update_list();
    // The statement is a format() template: a `%` of ours must reach it doubled.
    let aggregates = aggregates.replace('%', "%%");
    format!(
        "CREATE OR REPLACE FUNCTION srql_summary_drain_task(
    anchor text, cutoff timestamptz, batch_size integer)
RETURNS text
LANGUAGE plpgsql
-- Index probes per trace make the cost follow the batch (as srql_summary_apply's).
SET enable_seqscan = off
SET enable_mergejoin = off
SET jit = off
SET work_mem = '64MB'
AS $srql$
DECLARE
    shard bigint := get_shard_id_for_distribution_column('srql_summary_log', anchor);
    log_shard text := shard_name('srql_summary_log'::regclass, shard);
    spans text := shard_name('otel_traces'::regclass,
        get_shard_id_for_distribution_column('otel_traces', anchor));
    sums text := shard_name('otel_trace_summaries'::regclass,
        get_shard_id_for_distribution_column('otel_trace_summaries', anchor));
    extents text := shard_name('srql_summary_extent'::regclass,
        get_shard_id_for_distribution_column('srql_summary_extent', anchor));
    claimed bigint;
    oldest timestamptz;
    ids text[];
    los timestamptz[];
    his timestamptz[];
    lo timestamptz;
    hi timestamptz;
BEGIN
    -- One drain per shard at a time, even when a coordinator died mid-round and its
    -- statement here runs on: the next one waits, and its snapshot then sees this one's
    -- rows, so no older snapshot ever overwrites a newer row.
    PERFORM pg_advisory_xact_lock(7355609, (shard % 2147483647)::integer);
    -- Claim, widen the extents of traces with new span times (the entries of deletes
    -- carry none), and say where each claimed trace's spans can be.
    EXECUTE format($q$
        WITH c AS (
            DELETE FROM %1$s
            WHERE ctid IN (SELECT ctid FROM %1$s ORDER BY logged_at LIMIT $1)
            RETURNING trace_id, first_ts, last_ts, logged_at
        ),
        per AS (
            SELECT c.trace_id, min(c.first_ts) AS lo, max(c.last_ts) AS hi
            FROM c GROUP BY c.trace_id
        ),
        widened AS (
            INSERT INTO %2$s AS x (trace_id, first_ts, last_ts)
            SELECT per.trace_id, per.lo, per.hi FROM per WHERE per.lo IS NOT NULL
            ON CONFLICT (trace_id) DO UPDATE
            SET first_ts = least(x.first_ts, EXCLUDED.first_ts),
                last_ts = greatest(x.last_ts, EXCLUDED.last_ts)
            RETURNING x.trace_id, x.first_ts, x.last_ts
        ),
        k AS (
            SELECT widened.trace_id, widened.first_ts, widened.last_ts FROM widened
            UNION ALL
            SELECT per.trace_id, e.first_ts, e.last_ts
            FROM per LEFT JOIN %2$s e ON e.trace_id = per.trace_id
            WHERE per.lo IS NULL
        )
        SELECT (SELECT count(*) FROM c), (SELECT min(c.logged_at) FROM c),
               array_agg(k.trace_id), array_agg(k.first_ts), array_agg(k.last_ts)
        FROM k
    $q$, log_shard, extents) USING batch_size INTO claimed, oldest, ids, los, his;
    IF ids IS NULL THEN
        RETURN format('%s 0 ', claimed);
    END IF;
    -- A trace without an extent (NULL bounds) may have spans on any day.
    lo := CASE WHEN array_position(los, NULL) IS NULL
               THEN (SELECT min(x) FROM unnest(los) x) ELSE '-infinity' END;
    hi := CASE WHEN array_position(his, NULL) IS NULL
               THEN (SELECT max(x) FROM unnest(his) x) ELSE 'infinity' END;
    EXECUTE format($q$
        WITH k AS (
            SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS k(id, lo, hi)
        ),
        fresh AS (
            SELECT {aggregates},
                   min(timestamp) AS srql_first_ts, max(timestamp) AS srql_last_ts
            FROM k
            JOIN LATERAL (
                SELECT * FROM %1$s t
                WHERE t.trace_id = k.id
                  AND t.timestamp >= %4$L::timestamptz AND t.timestamp <= %5$L::timestamptz
                  AND t.timestamp >= coalesce(k.lo, '-infinity')
                  AND t.timestamp <= coalesce(k.hi, 'infinity')
            ) spans ON true
            GROUP BY trace_id
        ),
        kept AS (SELECT * FROM fresh WHERE fresh.timestamp >= $4),
        up AS (
            INSERT INTO %2$s AS s ({cols})
            SELECT {cols} FROM kept
            ON CONFLICT (trace_id) DO UPDATE SET {set}
            WHERE (s.*) IS DISTINCT FROM (EXCLUDED.*)
            RETURNING 1
        ),
        gone AS (
            DELETE FROM %2$s s
            WHERE s.trace_id IN (
                SELECT k.id FROM k WHERE NOT EXISTS (SELECT 1 FROM kept WHERE kept.trace_id = k.id))
            RETURNING 1
        ),
        -- Read over every day: from now on bounded by the spans found.
        found AS (
            INSERT INTO %3$s (trace_id, first_ts, last_ts)
            SELECT fresh.trace_id, fresh.srql_first_ts, fresh.srql_last_ts
            FROM fresh JOIN k ON k.id = fresh.trace_id
            WHERE k.lo IS NULL
            ON CONFLICT (trace_id) DO NOTHING
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM up), (SELECT count(*) FROM gone), (SELECT count(*) FROM found)
    $q$, spans, sums, extents, lo, hi) USING ids, los, his, cutoff;
    RETURN format('%s %s %s', claimed, cardinality(ids),
                  extract(epoch FROM clock_timestamp() - oldest));
END
$srql$"
    )
}

/// Creates or replaces the shard drain; Citus propagates it to the workers.
pub async fn install_drain_function(client: &Client) -> Result<(), DbError> {
    client.batch_execute(&drain_task_function_sql()).await?;
    Ok(())
}

/// Distributed counterpart of [`crate::summaries::ensure`]: stores the configuration
/// and makes `otel_trace_summaries` the incremental table, distributed by `trace_id`
/// and co-located with the spans, with capture on. A new table is filled by one resync
/// drain, which runs on every shard at once. Returns whether it built the table.
pub async fn ensure_summaries(
    client: &mut Client,
    cfg: &SummaryConfig,
    maintenance: &Maintenance,
) -> Result<bool, DbError> {
    refuse_view_mode(maintenance)?;
    crate::summaries::store_config(client, cfg, maintenance).await?;
    incremental::install_apply_function(client).await?;
    let marker = incremental::table_marker(cfg.window.num_seconds());
    if summary_table_current(client, &marker).await? {
        client
            .execute("SELECT srql_summary_set_capture(true)", &[])
            .await?;
        set_setting(
            &*client,
            keys::SUMMARY_MODE,
            SummaryMode::Incremental.as_str(),
        )
        .await?;
        return Ok(false);
    }
    AdvisoryLock::Refresh.acquire(&*client).await?;
    let built = build_summary_table(client, &marker).await;
    AdvisoryLock::Refresh.release(&*client).await?;
    built?;
    // Every trace in the window queued and drained, shard by shard; recorded as a run.
    client
        .batch_execute("CALL srql_refresh_summaries('full')")
        .await?;
    Ok(true)
}

async fn summary_table_current(client: &Client, marker: &str) -> Result<bool, DbError> {
    let row = client
        .query_opt(
            "SELECT obj_description(c.oid, 'pg_class'),
                    EXISTS (SELECT 1 FROM pg_dist_partition p WHERE p.logicalrelid = c.oid)
             FROM pg_class c
             WHERE c.oid = to_regclass('otel_trace_summaries') AND c.relkind = 'r'",
            &[],
        )
        .await?;
    Ok(row.is_some_and(|r| {
        r.get::<_, Option<String>>(0).as_deref() == Some(marker) && r.get::<_, bool>(1)
    }))
}

async fn build_summary_table(client: &mut Client, marker: &str) -> Result<(), DbError> {
    let drop_current = incremental::drop_current_sql(client).await?;
    let tx = client.transaction().await?;
    // Names are our constants; the marker is built from an integer and a hex digest.
    // CREATE TABLE AS gives the columns exactly the types the aggregate has.
    tx.batch_execute(&format!(
        "SET LOCAL citus.multi_shard_modify_mode TO 'sequential';
         {drop_current}
         CREATE TABLE otel_trace_summaries AS
         {}
         WITH NO DATA;
         {}
         SELECT create_distributed_table('otel_trace_summaries', 'trace_id',
                                         colocate_with => 'otel_traces');
         COMMENT ON TABLE otel_trace_summaries IS '{marker}';
         SELECT srql_summary_set_capture(true);",
        srql_plan::summary_sql::aggregate_query(None),
        summary_indexes::create_all_sql("otel_trace_summaries"),
    ))
    .await?;
    set_setting(&tx, keys::SUMMARY_MODE, SummaryMode::Incremental.as_str()).await?;
    tx.commit().await?;
    tracing::info!("distributed summary table created");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_citus_is_known() {
        assert_eq!("citus".parse::<Distribution>(), Ok(Distribution::Citus));
        let err = "spanner".parse::<Distribution>().unwrap_err();
        assert!(
            err.contains("`spanner`") && err.contains("`citus`"),
            "{err}"
        );
    }

    #[test]
    fn view_mode_is_refused_naming_incremental_mode() {
        let err = refuse_view_mode(&Maintenance::default()).unwrap_err();
        assert!(
            err.to_string().contains("--summary-mode incremental"),
            "{err}"
        );
    }

    #[test]
    fn drain_function_uses_the_shared_definition() {
        let sql = drain_task_function_sql();
        assert!(sql.contains("count(*) FILTER (WHERE status_code = 2) AS error_count"));
        assert!(sql.contains("ON CONFLICT (trace_id) DO UPDATE SET timestamp = EXCLUDED.timestamp"));
    }
}
