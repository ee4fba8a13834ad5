//! Incremental summary maintenance: `otel_trace_summaries` as a table, kept exact by
//! recomputing only the traces whose spans changed since the last drain.
//!
//! The moving parts live in SQL (migration 0004) so that pg_cron, the service scheduler
//! and `srql refresh` share one entry point, `srql_refresh_summaries`:
//! statement-level triggers on `otel_traces` and each partition append touched trace_ids
//! to `srql_summary_log`; a drain claims a batch of entries, recomputes those traces from
//! all their spans and deletes the entries in one transaction. The recompute itself,
//! `srql_summary_apply`, is generated here from [`srql_plan::summary_sql`] so the summary
//! row is defined once for the view, the table and the on-the-fly path.
//!
//! This module adds what needs Rust: that function, the switch between modes (a
//! resumable, day-by-day backfill of a new table, then a swap in one transaction), and
//! retention upkeep that keeps the table exact when day partitions are dropped.

use chrono::{DateTime, Duration, DurationRound, TimeZone, Utc};
use srql_plan::schema::SUMMARY_COLUMNS;
use srql_plan::summary_sql;
use tokio_postgres::Client;

use crate::db::DbError;
use crate::locks::AdvisoryLock;
use crate::refresh_runs::{last_applying_drain, record_build, RunMethod};
use crate::settings::{delete_setting, get_setting, keys, set_setting, SummaryMode};
use crate::summary_indexes;

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

/// The summary relation's row definition and indexes, hashed into its marker comment: a
/// changed definition rebuilds the table (or the view) like a changed window does.
pub(crate) fn definition_hash() -> String {
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let indexes = summary_indexes::definition_text();
    for b in summary_sql::AGGREGATES.bytes().chain(indexes.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The comment that identifies a current summary table for `window_secs`.
pub fn table_marker(window_secs: i64) -> String {
    format!(
        "srql summaries; mode=incremental; window_secs={window_secs}; def={}",
        definition_hash()
    )
}

pub(crate) fn column_list() -> String {
    SUMMARY_COLUMNS
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `col = EXCLUDED.col` for every column but the key.
pub(crate) fn update_list() -> String {
    SUMMARY_COLUMNS
        .iter()
        .filter(|c| c.name != "trace_id")
        .map(|c| format!("{0} = EXCLUDED.{0}", c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `CREATE OR REPLACE FUNCTION srql_summary_apply(ids, los, his, cutoff)`: recomputes the
/// traces `ids` from all their spans with the shared select list
/// ([`summary_sql::AGGREGATES`]); upserts those whose latest span is inside the window
/// (`>= cutoff`), deletes the rest (no spans left, or too old). Unchanged rows are not
/// rewritten, so duplicate deliveries leave no dead tuples.
///
/// `los`/`his` are the span times the claimed log entries carry. Widened by the trace's
/// extent (`srql_summary_extent`, which the same statement updates), they bound where its
/// spans can be, so each trace probes only the partitions of that range (run-time
/// partition pruning in the lateral join) instead of every day of retention.
///
/// PL/pgSQL, not SQL: its body is planned when first run, so the function can exist
/// while `otel_trace_summaries` is still a view (it only ever runs on the table).
pub fn apply_function_sql() -> String {
    let aggregates = summary_sql::AGGREGATES;
    let cols = column_list();
    let set = update_list();
    format!(
        "CREATE OR REPLACE FUNCTION srql_summary_apply(
    ids text[], los timestamptz[], his timestamptz[], cutoff timestamptz,
    OUT upserted bigint, OUT deleted bigint)
LANGUAGE plpgsql
-- Index probes are what make the cost follow the batch; a sequential scan (or a merge
-- join reading a whole index) would follow the table. Plans are made for each call's
-- arrays: a generic plan cannot know a batch holds thousands of ids, and measured 50 s
-- instead of 0.3 s. JIT only pays off for queries far longer than this.
SET enable_seqscan = off
SET enable_mergejoin = off
SET plan_cache_mode = force_custom_plan
SET jit = off
-- A batch's spans are sorted by trace in memory, not on disk (the server default is 4MB).
SET work_mem = '64MB'
AS $srql$
BEGIN
    WITH u AS (SELECT * FROM unnest(ids, los, his) AS u(id, lo, hi)),
    -- Traces with new span times: their extent widened (or started), in one probe.
    widened AS (
        INSERT INTO srql_summary_extent AS x (trace_id, first_ts, last_ts)
        SELECT u.id, u.lo, u.hi FROM u WHERE u.lo IS NOT NULL
        ON CONFLICT (trace_id) DO UPDATE
        SET first_ts = least(x.first_ts, EXCLUDED.first_ts),
            last_ts = greatest(x.last_ts, EXCLUDED.last_ts)
        RETURNING x.trace_id AS id, x.first_ts AS lo, x.last_ts AS hi
    ),
    -- Where each trace's spans can be. Entries without span times (deletes) keep the
    -- stored extent; no extent at all means no span is left.
    k AS (
        SELECT widened.id, widened.lo, widened.hi FROM widened
        UNION ALL
        SELECT u.id, e.first_ts, e.last_ts
        FROM u LEFT JOIN srql_summary_extent e ON e.trace_id = u.id
        WHERE u.lo IS NULL
    ),
    fresh AS (
        SELECT {aggregates}
        FROM k
        JOIN LATERAL (
            SELECT * FROM otel_traces t
            WHERE t.trace_id = k.id AND t.timestamp >= k.lo AND t.timestamp <= k.hi
        ) spans ON true
        GROUP BY trace_id
    ),
    kept AS (SELECT * FROM fresh WHERE fresh.timestamp >= cutoff),
    up AS (
        INSERT INTO otel_trace_summaries AS s ({cols})
        SELECT {cols} FROM kept
        ON CONFLICT (trace_id) DO UPDATE SET {set}
        WHERE (s.*) IS DISTINCT FROM (EXCLUDED.*)
        RETURNING 1
    ),
    -- The ids not kept first (in memory), then only those are looked up: usually none.
    gone AS (
        DELETE FROM otel_trace_summaries s
        WHERE s.trace_id IN (
            SELECT k.id FROM k WHERE NOT EXISTS (SELECT 1 FROM kept WHERE kept.trace_id = k.id))
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM up), (SELECT count(*) FROM gone) INTO upserted, deleted;
END
$srql$"
    )
}

/// Creates or replaces `srql_summary_apply` (every `srql migrate`, in either mode).
pub async fn install_apply_function(client: &Client) -> Result<(), DbError> {
    client.batch_execute(&apply_function_sql()).await?;
    Ok(())
}

/// Whether the capture triggers are on `otel_traces`.
pub async fn capture_enabled(client: &Client) -> Result<bool, DbError> {
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_trigger
                            WHERE tgrelid = 'otel_traces'::regclass
                              AND tgname = 'srql_summary_inserted')",
            &[],
        )
        .await?
        .get(0))
}

/// `relkind` of a relation by name, if it exists.
pub(crate) async fn relkind(client: &Client, name: &str) -> Result<Option<String>, DbError> {
    Ok(client
        .query_opt(
            "SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)",
            &[&name],
        )
        .await?
        .map(|r| r.get(0)))
}

/// DDL dropping `name` whatever kind of summary relation it is. `name` comes from our
/// own constants, never from input.
async fn drop_sql(client: &Client, name: &'static str) -> Result<String, DbError> {
    Ok(match relkind(client, name).await?.as_deref() {
        Some("r") => format!("DROP TABLE IF EXISTS {name};"),
        Some("m") => format!("DROP MATERIALIZED VIEW IF EXISTS {name};"),
        _ => String::new(),
    })
}

/// DDL dropping the current `otel_trace_summaries`, view or table, for a swap.
pub async fn drop_current_sql(client: &Client) -> Result<String, DbError> {
    drop_sql(client, "otel_trace_summaries").await
}

/// Leaves incremental mode's side effects behind: capture triggers dropped and the log
/// emptied (nobody would drain it), an unfinished backfill forgotten. A no-op, without
/// taking any lock, when there is nothing to undo.
pub async fn disable(client: &Client) -> Result<(), DbError> {
    let progress = get_setting(client, keys::BACKFILL).await?;
    let next = relkind(client, "otel_trace_summaries_next").await?;
    if !capture_enabled(client).await? && progress.is_none() && next.as_deref() != Some("r") {
        return Ok(());
    }
    AdvisoryLock::Backfill.acquire(client).await?;
    let result = async {
        client
            .batch_execute(&format!(
                "{}
                 SELECT srql_summary_set_capture(false);
                 DELETE FROM srql_settings WHERE key = '{}';",
                if relkind(client, "otel_trace_summaries_next")
                    .await?
                    .as_deref()
                    == Some("r")
                {
                    "DROP TABLE IF EXISTS otel_trace_summaries_next;"
                } else {
                    ""
                },
                keys::BACKFILL
            ))
            .await?;
        tracing::info!("incremental capture turned off");
        Ok::<_, DbError>(())
    }
    .await;
    AdvisoryLock::Backfill.release(client).await?;
    result
}

/// Where a backfill stands, stored in `srql_settings` after every chunk so an
/// interrupted backfill resumes where it stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Backfill {
    window_secs: i64,
    def: String,
    /// Traces whose latest span is older than this are not summarized.
    cutoff: DateTime<Utc>,
    /// Spans committed before this instant are all visible to every chunk; later ones
    /// are in the log. The swapped-in table's `snapshot_at`.
    capture_at: DateTime<Utc>,
    /// Start of the last, open-ended chunk.
    end_day: DateTime<Utc>,
    /// Chunks done.
    next: u64,
    /// Rows written so far.
    rows: u64,
    /// The relation being replaced was a summary table.
    from_table: bool,
    /// Id of the last drain that applied anything when the backfill started. From a
    /// table, drains are held off while we run; one that ran while we were interrupted
    /// consumed log entries the new table never saw, so the backfill starts over.
    drains_seen: i64,
}

impl Backfill {
    fn encode(&self) -> String {
        format!(
            "window_secs={};def={};cutoff={};capture_at={};end_day={};next={};rows={};from_table={};drains_seen={}",
            self.window_secs,
            self.def,
            self.cutoff.timestamp_micros(),
            self.capture_at.timestamp_micros(),
            self.end_day.timestamp_micros(),
            self.next,
            self.rows,
            self.from_table,
            self.drains_seen
        )
    }

    fn decode(s: &str) -> Option<Backfill> {
        let get = |key: &str| {
            s.split(';')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        };
        let micros = |v: Option<String>| {
            v.and_then(|v| v.parse::<i64>().ok())
                .and_then(DateTime::from_timestamp_micros)
        };
        Some(Backfill {
            window_secs: get("window_secs")?.parse().ok()?,
            def: get("def")?,
            cutoff: micros(get("cutoff"))?,
            capture_at: micros(get("capture_at"))?,
            end_day: micros(get("end_day"))?,
            next: get("next")?.parse().ok()?,
            rows: get("rows")?.parse().ok()?,
            from_table: get("from_table")?.parse().ok()?,
            drains_seen: get("drains_seen")?.parse().ok()?,
        })
    }

    /// Chunk boundaries: everything before the cutoff (extents only: those traces are
    /// not summarized, but a late span may bring one back), the cutoff, each UTC
    /// midnight after it up to `end_day`, then an open end. A trace belongs to the chunk
    /// holding its latest span's timestamp, so each is summarized once however its spans
    /// straddle days.
    fn chunks(&self) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let mut bounds = vec![far_past(), self.cutoff];
        let mut d = day_floor(self.cutoff) + Duration::days(1);
        while d <= self.end_day {
            bounds.push(d);
            d += Duration::days(1);
        }
        let mut out: Vec<_> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
        if let Some(last) = bounds.last() {
            out.push((*last, far_future()));
        }
        out
    }
}

fn day_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::days(1)).unwrap_or(t)
}

/// Lower bound of the first chunk: before any span time we will see.
fn far_past() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Upper bound of the open-ended last chunk: later than any span time we will see,
/// inside PostgreSQL's and chrono's ranges.
fn far_future() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(9999, 12, 31, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Makes `otel_trace_summaries` the incremental table for `window`: nothing to do if it
/// already is; otherwise capture on, backfill a `_next` table day by day (resuming a
/// previous attempt when still valid), then swap it in. Returns whether it built.
pub async fn ensure_table(
    client: &mut Client,
    window: Duration,
    progress: &mut (dyn FnMut(BackfillProgress) + Send),
) -> Result<bool, DbError> {
    let marker = table_marker(window.num_seconds());
    if is_current(client, &marker).await? {
        // Idempotent: re-creates capture triggers only where missing.
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
    AdvisoryLock::Backfill.acquire(&*client).await?;
    // Replacing a table: drains must wait (they would feed the old table entries the
    // new one needs). Replacing a view: its refreshes go on until the swap.
    let from_table = relkind(client, "otel_trace_summaries").await?.as_deref() == Some("r");
    let mut refresh_held = false;
    let result = async {
        if from_table {
            lock_refresh(client).await?;
            refresh_held = true;
        }
        build(
            client,
            window,
            &marker,
            from_table,
            &mut refresh_held,
            progress,
        )
        .await
    }
    .await;
    let mut unlock = vec![AdvisoryLock::Backfill];
    if refresh_held {
        unlock.push(AdvisoryLock::Refresh);
    }
    let mut unlocked = Ok(());
    for lock in unlock {
        if let Err(e) = lock.release(&*client).await {
            unlocked = Err(e);
        }
    }
    let built = result?;
    unlocked?;
    Ok(built)
}

async fn is_current(client: &Client, marker: &str) -> Result<bool, DbError> {
    let row = client
        .query_opt(
            "SELECT c.relkind::text, obj_description(c.oid, 'pg_class') FROM pg_class c
             WHERE c.oid = to_regclass('otel_trace_summaries')",
            &[],
        )
        .await?;
    Ok(row.is_some_and(|r| {
        r.get::<_, String>(0) == "r" && r.get::<_, Option<String>>(1).as_deref() == Some(marker)
    }))
}

async fn lock_refresh(client: &Client) -> Result<(), DbError> {
    AdvisoryLock::Refresh.acquire(client).await
}

async fn build(
    client: &mut Client,
    window: Duration,
    marker: &str,
    from_table: bool,
    refresh_held: &mut bool,
    progress: &mut (dyn FnMut(BackfillProgress) + Send),
) -> Result<bool, DbError> {
    let started = std::time::Instant::now();
    // Another `srql migrate` may have finished the job while we waited for the lock.
    if is_current(client, marker).await? {
        return Ok(false);
    }
    let mut state = match resumable(client, window, from_table).await? {
        Some(b) => {
            tracing::info!(
                chunks_done = b.next,
                rows = b.rows,
                "resuming the summary backfill"
            );
            b
        }
        None => start_backfill(client, window, from_table).await?,
    };
    let chunks = state.chunks();
    let total = chunks.len() as u64;
    let resumed_from = state.next;
    progress(BackfillProgress {
        done: state.next,
        total,
        rows: state.rows,
        resumed_from,
    });
    let sql = chunk_sql();
    while let Some(&(lo, hi)) = chunks.get(state.next as usize) {
        let tx = client.transaction().await?;
        let n = tx.execute(sql.as_str(), &[&lo, &hi, &state.cutoff]).await?;
        state.next += 1;
        state.rows += n;
        // Rows and progress commit together: a resumed backfill neither redoes nor skips
        // a chunk.
        tx.execute(
            "UPDATE srql_settings SET value = $2, updated_at = now() WHERE key = $1",
            &[&keys::BACKFILL, &state.encode()],
        )
        .await?;
        tx.commit().await?;
        progress(BackfillProgress {
            done: state.next,
            total,
            rows: state.rows,
            resumed_from,
        });
    }
    // Secondary indexes after the bulk of the inserts: building once is cheaper than
    // maintaining them row by row. Same names and definitions as the view's.
    let secondary: String = summary_indexes::secondary()
        .iter()
        .map(|i| i.create_sql("otel_trace_summaries_next", true) + "\n")
        .collect();
    client.batch_execute(&secondary).await?;
    // A table written in one go has no page marked all-visible until autovacuum comes
    // round (at L, minutes later): until then every index-only scan, such as the 24 h
    // service list, also read each row from the heap (250 ms against 55 ms at 10M
    // spans). On its own: VACUUM cannot run in a multi-statement batch.
    client
        .batch_execute("VACUUM (ANALYZE) otel_trace_summaries_next")
        .await?;
    if !*refresh_held {
        // The view's refresh must not run across the swap.
        lock_refresh(client).await?;
        *refresh_held = true;
    }
    let drop_current = drop_current_sql(client).await?;
    let tx = client.transaction().await?;
    // Names are our constants; the marker is built from an integer and a hex digest.
    tx.batch_execute(&format!(
        "{drop_current}
         ALTER TABLE otel_trace_summaries_next RENAME TO otel_trace_summaries;
         {}
         COMMENT ON TABLE otel_trace_summaries IS '{marker}';",
        summary_indexes::rename_all_sql("otel_trace_summaries_next", "otel_trace_summaries")
    ))
    .await?;
    set_setting(&tx, keys::SUMMARY_MODE, SummaryMode::Incremental.as_str()).await?;
    delete_setting(&tx, keys::BACKFILL).await?;
    // The backfill is the table's first refresh: it reflects every span committed
    // before capture began; later ones wait in the log for the first drain.
    let rows = i64::try_from(state.rows).unwrap_or(i64::MAX);
    record_build(
        &tx,
        RunMethod::Backfill,
        Some(state.capture_at),
        Some(state.cutoff),
        rows,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(
        window_secs = window.num_seconds(),
        rows = state.rows,
        elapsed = ?started.elapsed(),
        "summary table backfilled and swapped in"
    );
    Ok(true)
}

/// A stored backfill that is still valid for `window` and whose `_next` table exists.
async fn resumable(
    client: &Client,
    window: Duration,
    from_table: bool,
) -> Result<Option<Backfill>, DbError> {
    let Some(stored) = get_setting(client, keys::BACKFILL)
        .await?
        .and_then(|s| Backfill::decode(&s))
    else {
        return Ok(None);
    };
    let valid = stored.window_secs == window.num_seconds()
        && stored.def == definition_hash()
        && stored.from_table == from_table
        && capture_enabled(client).await?
        && relkind(client, "otel_trace_summaries_next")
            .await?
            .as_deref()
            == Some("r")
        && (!from_table || last_applying_drain(client).await? == stored.drains_seen);
    Ok(valid.then_some(stored))
}

async fn start_backfill(
    client: &mut Client,
    window: Duration,
    from_table: bool,
) -> Result<Backfill, DbError> {
    // Capture first, in its own transaction: CREATE TRIGGER waits for writers in flight,
    // so every later commit is logged and every earlier one is visible to the chunks.
    client
        .execute("SELECT srql_summary_set_capture(true)", &[])
        .await?;
    let capture_at: DateTime<Utc> = client
        .query_one("SELECT clock_timestamp()", &[])
        .await?
        .get(0);
    let state = Backfill {
        window_secs: window.num_seconds(),
        def: definition_hash(),
        cutoff: capture_at - window,
        capture_at,
        end_day: day_floor(capture_at) + Duration::days(1),
        next: 0,
        rows: 0,
        from_table,
        drains_seen: last_applying_drain(client).await?,
    };
    let drop_next = drop_sql(client, "otel_trace_summaries_next").await?;
    let tx = client.transaction().await?;
    // CREATE TABLE AS gives the columns exactly the types (and collations) the view's
    // defining query has.
    tx.batch_execute(&format!(
        "{drop_next}
         CREATE TABLE otel_trace_summaries_next
         -- Drains rewrite recent rows all day and clear their pages' visibility bits;
         -- vacuumed at 2% of changes, not 20%, a range's index-only scans (the service
         -- list of the last 24 h) keep reading the index alone.
         WITH (autovacuum_vacuum_scale_factor = 0.02,
               autovacuum_vacuum_insert_scale_factor = 0.02) AS
         {}
         WITH NO DATA;
         {}",
        summary_sql::aggregate_query(None),
        summary_indexes::unique_trace_id().create_sql("otel_trace_summaries_next", false)
    ))
    .await?;
    set_setting(&tx, keys::BACKFILL, &state.encode()).await?;
    tx.commit().await?;
    tracing::info!(
        window_secs = state.window_secs,
        chunks = state.chunks().len(),
        "summary backfill started"
    );
    Ok(state)
}

/// One chunk: every trace whose latest span lies in [$1, $2), aggregated over all its
/// spans with the shared select list; its extent recorded (widened, never narrowed, so
/// one kept from an earlier incremental period stays a superset), and its summary row
/// written if the trace is inside the window (`>= $3`). ON CONFLICT: a trace that gained
/// a later span between two chunks may be met twice; the later snapshot wins, and the log
/// has its entry anyway.
fn chunk_sql() -> String {
    let cols = column_list();
    format!(
        "WITH agg AS (
             SELECT {}, min(timestamp) AS srql_first_ts
             FROM otel_traces
             WHERE trace_id IN (SELECT trace_id FROM otel_traces
                                WHERE timestamp >= $1 AND timestamp < $2)
             GROUP BY trace_id
             HAVING max(timestamp) >= $1 AND max(timestamp) < $2
         ),
         extent AS (
             INSERT INTO srql_summary_extent AS x (trace_id, first_ts, last_ts)
             SELECT trace_id, srql_first_ts, timestamp FROM agg
             ON CONFLICT (trace_id) DO UPDATE
             SET first_ts = least(x.first_ts, EXCLUDED.first_ts),
                 last_ts = greatest(x.last_ts, EXCLUDED.last_ts)
         )
         INSERT INTO otel_trace_summaries_next AS s ({cols})
         SELECT {cols} FROM agg WHERE agg.timestamp >= $3
         ON CONFLICT (trace_id) DO UPDATE SET {}",
        summary_sql::AGGREGATES,
        update_list()
    )
}

/// Partition upkeep ([`crate::partitions::upkeep`]) that keeps the summary table exact:
/// traces with spans in the day partitions about to be dropped are queued for a
/// recompute, under the refresh lock so no drain runs between queueing and dropping; new
/// partitions then get their capture triggers. Plain upkeep when capture is off.
pub async fn upkeep(
    client: &Client,
    retention: Duration,
) -> Result<crate::partitions::UpkeepReport, DbError> {
    if !capture_enabled(client).await? {
        return crate::partitions::upkeep(client, retention).await;
    }
    lock_refresh(client).await?;
    let result = async {
        let queued: i64 = client
            .query_one(
                "SELECT srql_summary_touch_expiring($1::text::interval)",
                &[&crate::partitions::pg_interval(retention)],
            )
            .await?
            .get(0);
        if queued > 0 {
            tracing::info!(queued, "traces in expiring partitions queued for recompute");
        }
        let report = crate::partitions::upkeep(client, retention).await?;
        if report.dropped > 0 {
            client
                .execute("SELECT srql_summary_prune_extents()", &[])
                .await?;
        }
        Ok::<_, DbError>(report)
    }
    .await;
    let unlock = AdvisoryLock::Refresh.release(client).await;
    let report = result?;
    unlock?;
    client
        .execute("SELECT srql_summary_capture_partitions()", &[])
        .await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Backfill {
        let t = Utc
            .with_ymd_and_hms(2025, 3, 10, 15, 30, 0)
            .single()
            .unwrap();
        Backfill {
            window_secs: 7 * 86_400,
            def: definition_hash(),
            cutoff: t - Duration::days(7),
            capture_at: t,
            end_day: day_floor(t) + Duration::days(1),
            next: 3,
            rows: 12_345,
            from_table: true,
            drains_seen: 42,
        }
    }

    #[test]
    fn progress_round_trips_and_rejects_garbage() {
        let b = sample();
        assert_eq!(Backfill::decode(&b.encode()), Some(b));
        assert_eq!(Backfill::decode("window_secs=1;def=x"), None);
        assert_eq!(Backfill::decode(""), None);
    }

    #[test]
    fn chunks_cover_the_window_once_and_end_open() {
        let b = sample();
        let chunks = b.chunks();
        assert_eq!(chunks.first().map(|c| c.0), Some(far_past()));
        assert_eq!(chunks.get(1).map(|c| c.0), Some(b.cutoff));
        assert_eq!(chunks.last().map(|c| c.1), Some(far_future()));
        for pair in chunks.windows(2) {
            assert_eq!(pair[0].1, pair[1].0, "chunks must tile without gaps");
        }
        // Before the window, a partial first day, 7 midnights, the open end.
        assert_eq!(chunks.len(), 10);
    }

    #[test]
    fn apply_function_uses_the_shared_definition() {
        let sql = apply_function_sql();
        assert!(sql.contains(summary_sql::AGGREGATES));
        assert!(sql.contains("t.trace_id = k.id"));
        assert!(!update_list().contains("trace_id ="));
    }
}
