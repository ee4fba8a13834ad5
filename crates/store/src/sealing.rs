//! Sealing: day partitions older than `seal_after` rewritten as columnar storage
//! (citus_columnar), about 5x smaller, swapped in under a lock held only for the swap.
//! The steps and why they lose no span are in migration 0009; this module runs them in
//! their transactions, bounds every lock wait, and resumes a day an earlier round left
//! half done.

use chrono::{DateTime, Duration, Utc};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, GenericClient, IsolationLevel};

use crate::db::DbError;
use crate::locks::AdvisoryLock;
use crate::partitions::pg_interval;

/// Days are sealed once they ended this long ago, unless configured otherwise (as
/// `--seal-after` reads it): late spans for a day mostly arrive within minutes, and a
/// sealed day still takes them.
pub const DEFAULT_SEAL_AFTER_TEXT: &str = "2d";

/// [`DEFAULT_SEAL_AFTER_TEXT`] as a duration, for callers that seal without reading the
/// flag (a benchmark standing in for a running service).
pub fn default_seal_after() -> Duration {
    crate::setup::parse_duration(DEFAULT_SEAL_AFTER_TEXT)
        .expect("the default seal-after parses (tested below)")
}

/// How long beginning and swapping wait for the partition's (and, for the swap,
/// `otel_traces`') lock. Queries queue behind a waiting ACCESS EXCLUSIVE request, so this
/// is also the longest sealing can delay them; a busy day is retried next round.
const LOCK_TIMEOUT: &str = "1s";

/// The copy and index build of one day; far above what a day takes, it only bounds a
/// stuck one.
const COPY_TIMEOUT: &str = "30min";

/// Swap attempts per round before a day waits for the next round.
const SWAP_ATTEMPTS: u32 = 3;

/// What the message says when the extension is missing, for the log and `/healthz`.
pub const UNAVAILABLE: &str = "sealing is off: the citus_columnar extension is not installed \
     in this database (install Citus, then run `srql migrate`; see README)";

/// Why sealing is off on a distributed database, for the log and `/healthz`.
pub const DISTRIBUTED: &str = "sealing is off: this database is distributed (Citus), and day \
     partitions of a distributed table are not sealed; their shards stay heap \
     (docs/scale-out.md)";

/// The order a sealed day's spans are written in (migration 0020); each name is a fixed
/// `ORDER BY` there. The default groups a trace's spans, which lookups by id need; the
/// others exist to be measured (`srql bench-sealing --sort-order`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortOrder {
    /// (trace_id, timestamp).
    #[default]
    TraceId,
    /// (timestamp, trace_id).
    Timestamp,
    /// (service_name, trace_id, timestamp).
    ServiceName,
}

impl SortOrder {
    pub const ALL: [SortOrder; 3] = [
        SortOrder::TraceId,
        SortOrder::Timestamp,
        SortOrder::ServiceName,
    ];

    /// As migration 0020 names it.
    pub fn name(self) -> &'static str {
        match self {
            SortOrder::TraceId => "trace_id",
            SortOrder::Timestamp => "timestamp",
            SortOrder::ServiceName => "service_name",
        }
    }

    /// The inverse of [`SortOrder::name`] (a command-line value parser).
    pub fn parse(s: &str) -> Result<SortOrder, String> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|o| o.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|o| o.name()).collect();
                format!("unknown sort order `{s}`: one of {}", names.join(", "))
            })
    }
}

/// One day sealed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SealedDay {
    pub partition: String,
    pub spans: i64,
    /// Spans that arrived for the day while it was being copied.
    pub late_spans: i64,
    pub heap_bytes: i64,
    pub sealed_bytes: i64,
    /// From the start of the first attempt to the swap.
    pub seconds: f64,
}

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SealRound {
    /// The extension is missing, or the database is distributed: nothing was attempted.
    pub unavailable: bool,
    /// Why, when `unavailable`: [`UNAVAILABLE`] or [`DISTRIBUTED`].
    pub unavailable_because: Option<&'static str>,
    /// Another session holds the sealing lock: nothing was attempted.
    pub busy: bool,
    pub sealed: Vec<SealedDay>,
    /// Days left for a later round, with the reason (a lock not granted in time, an error).
    pub postponed: Vec<(String, String)>,
}

/// Whether this database can seal: citus_columnar is created in it, and it is not
/// distributed.
pub async fn available(client: &impl GenericClient) -> Result<bool, DbError> {
    Ok(unavailable_because(client).await?.is_none())
}

/// Why this database cannot seal ([`UNAVAILABLE`], [`DISTRIBUTED`]), or `None`.
pub async fn unavailable_because(
    client: &impl GenericClient,
) -> Result<Option<&'static str>, DbError> {
    // Distributed day partitions are refused rather than sealed: sealing swaps a local
    // columnar copy in for the day, which would leave the day's spans on the coordinator,
    // outside the shards and beyond the row trigger that keeps summaries exact.
    if crate::distributed::is_distributed(client).await? {
        return Ok(Some(DISTRIBUTED));
    }
    let columnar: bool = client
        .query_one("SELECT srql_sealing_available()", &[])
        .await?
        .get(0);
    Ok((!columnar).then_some(UNAVAILABLE))
}

/// Seals every day due: ended `seal_after` ago or more, not yet due for retention,
/// oldest first, a day interrupted earlier first of all. One sealer at a time across all
/// instances; the others return `busy`.
pub async fn seal_due(
    client: &mut Client,
    seal_after: Duration,
    retention: Duration,
) -> Result<SealRound, DbError> {
    seal_due_sorted(client, seal_after, retention, SortOrder::default()).await
}

/// [`seal_due`], writing the days in `order`.
pub async fn seal_due_sorted(
    client: &mut Client,
    seal_after: Duration,
    retention: Duration,
    order: SortOrder,
) -> Result<SealRound, DbError> {
    if let Some(because) = unavailable_because(&*client).await? {
        return Ok(SealRound {
            unavailable: true,
            unavailable_because: Some(because),
            ..SealRound::default()
        });
    }
    if !AdvisoryLock::Seal.try_acquire(&*client).await? {
        return Ok(SealRound {
            busy: true,
            ..SealRound::default()
        });
    }
    let result = seal_locked(client, seal_after, retention, order).await;
    let unlock = AdvisoryLock::Seal.release(&*client).await;
    let round = result?;
    unlock?;
    Ok(round)
}

async fn seal_locked(
    client: &mut Client,
    seal_after: Duration,
    retention: Duration,
    order: SortOrder,
) -> Result<SealRound, DbError> {
    forget_vanished(client).await?;
    let due: Vec<String> = client
        .query(
            "SELECT srql_seal_due($1::text::interval, $2::text::interval)",
            &[&pg_interval(seal_after), &pg_interval(retention)],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut round = SealRound::default();
    for part in due {
        match seal_day_sorted(client, &part, order).await {
            Ok(Some(day)) => {
                tracing::info!(
                    partition = %day.partition,
                    spans = day.spans,
                    late_spans = day.late_spans,
                    heap_mib = day.heap_bytes as f64 / 1048576.0,
                    sealed_mib = day.sealed_bytes as f64 / 1048576.0,
                    seconds = day.seconds,
                    "day sealed"
                );
                round.sealed.push(day);
            }
            Ok(None) => {}
            Err(e) if client.is_closed() => return Err(e),
            Err(e) => {
                tracing::warn!(partition = %part, error = %e, "sealing postponed");
                round.postponed.push((part, e.to_string()));
            }
        }
    }
    Ok(round)
}

/// Seals one heap day partition, resuming an interrupted attempt: after the copy
/// committed, only the swap is left. `None` when the day has no spans (nothing to gain;
/// it is looked at again next round).
pub async fn seal_day(client: &mut Client, part: &str) -> Result<Option<SealedDay>, DbError> {
    seal_day_sorted(client, part, SortOrder::default()).await
}

/// [`seal_day`], writing the day in `order` (unless only the swap was left).
pub async fn seal_day_sorted(
    client: &mut Client,
    part: &str,
    order: SortOrder,
) -> Result<Option<SealedDay>, DbError> {
    let copied: Option<bool> = client
        .query_opt(
            "SELECT p.snapshot IS NOT NULL AND to_regclass(p.stage) IS NOT NULL
                    AND to_regclass(p.late) IS NOT NULL
             FROM srql_seal_progress p WHERE p.part = $1",
            &[&part],
        )
        .await?
        .map(|r| r.get(0));
    if copied != Some(true) {
        let empty: bool = client
            .query_one(
                &format!("SELECT NOT EXISTS (SELECT 1 FROM {})", quote_ident(part)),
                &[],
            )
            .await?
            .get(0);
        if empty {
            return Ok(None);
        }
        begin(client, part).await?;
        copy_sorted(client, part, order).await?;
    }
    let mut attempt = 1;
    loop {
        match swap(client, part).await {
            Ok(day) => return Ok(Some(day)),
            Err(e) if attempt < SWAP_ATTEMPTS && lock_not_granted(&e) => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Step 1 (migration 0009): the columnar stage, the side table for late spans and the
/// trigger that fills it.
pub async fn begin(client: &mut Client, part: &str) -> Result<(), DbError> {
    let tx = client.transaction().await?;
    tx.batch_execute(&format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        .await?;
    tx.execute("SELECT srql_seal_begin($1)", &[&part]).await?;
    tx.commit().await?;
    Ok(())
}

/// Step 2: the day's spans, sorted, into the stage, with its indexes. Readers and
/// writers of the day go on meanwhile.
pub async fn copy(client: &mut Client, part: &str) -> Result<i64, DbError> {
    copy_sorted(client, part, SortOrder::default()).await
}

/// [`copy`], writing the day in `order`.
pub async fn copy_sorted(
    client: &mut Client,
    part: &str,
    order: SortOrder,
) -> Result<i64, DbError> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .start()
        .await?;
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = '{COPY_TIMEOUT}'; SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"
    ))
    .await?;
    // The default through the one-argument form, which every schema since 0009 has: a
    // round started against a database not yet migrated to 0020 still seals.
    let row = if order == SortOrder::default() {
        tx.query_one("SELECT srql_seal_copy($1)", &[&part]).await?
    } else {
        tx.query_one("SELECT srql_seal_copy($1, $2)", &[&part, &order.name()])
            .await?
    };
    let n: i64 = row.get(0);
    tx.commit().await?;
    Ok(n)
}

/// Step 3: late spans moved over and the stage swapped in, under a brief lock.
pub async fn swap(client: &mut Client, part: &str) -> Result<SealedDay, DbError> {
    let tx = client.transaction().await?;
    tx.batch_execute(&format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        .await?;
    tx.execute("SELECT srql_seal_swap($1)", &[&part]).await?;
    let row = tx
        .query_one(
            "SELECT spans, late_spans, heap_bytes, sealed_bytes, seconds
             FROM srql_seal_log WHERE part = $1",
            &[&part],
        )
        .await?;
    tx.commit().await?;
    Ok(SealedDay {
        partition: part.to_string(),
        spans: row.get(0),
        late_spans: row.get(1),
        heap_bytes: row.get(2),
        sealed_bytes: row.get(3),
        seconds: row.get(4),
    })
}

/// Attempts whose day was dropped (retention) leave a stage and a side table behind;
/// sealed days that were dropped leave their log rows.
async fn forget_vanished(client: &mut Client) -> Result<(), DbError> {
    let gone: Vec<String> = client
        .query(
            "SELECT part FROM srql_seal_progress WHERE to_regclass(part) IS NULL",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for part in gone {
        client
            .execute("SELECT srql_seal_abandon($1)", &[&part])
            .await?;
    }
    client
        .execute(
            "DELETE FROM srql_seal_log WHERE to_regclass(part) IS NULL",
            &[],
        )
        .await?;
    Ok(())
}

fn lock_not_granted(e: &DbError) -> bool {
    match e {
        DbError::Pg(e) => e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE),
        _ => false,
    }
}

/// Partition names are ours (`otel_traces_pYYYYMMDD`), but quoted all the same.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Sealing as `/healthz` and `/metrics` show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SealingStatus {
    pub available: bool,
    /// Why sealing does nothing, when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub sealed_days: i64,
    pub heap_days: i64,
    /// Days whose sealing has begun and not finished (resumed next round).
    pub in_progress: Vec<String>,
    /// What the sealed days took as heap, and take now (tables and indexes).
    pub sealed_heap_bytes: i64,
    pub sealed_bytes: i64,
    pub last_sealed_at: Option<DateTime<Utc>>,
}

/// Reads [`SealingStatus`] from the catalog and the seal log: cheap, for every scrape.
pub async fn status(client: &impl GenericClient) -> Result<SealingStatus, DbError> {
    let because = unavailable_because(client).await?;
    let available = because.is_none();
    let days = client
        .query_one(
            "SELECT count(*) FILTER (WHERE a.amname = 'columnar'),
                    count(*) FILTER (WHERE a.amname = 'heap')
             FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid
             JOIN pg_am a ON a.oid = c.relam
             WHERE i.inhparent = 'otel_traces'::regclass AND c.relname ~ '^otel_traces_p\\d{8}$'",
            &[],
        )
        .await?;
    let in_progress = client
        .query("SELECT part FROM srql_seal_progress ORDER BY part", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let log = client
        .query_one(
            "SELECT coalesce(sum(heap_bytes), 0)::bigint, coalesce(sum(sealed_bytes), 0)::bigint,
                    max(sealed_at)
             FROM srql_seal_log WHERE to_regclass(part) IS NOT NULL",
            &[],
        )
        .await?;
    Ok(SealingStatus {
        available,
        message: because.map(str::to_string),
        sealed_days: days.get(0),
        heap_days: days.get(1),
        in_progress,
        sealed_heap_bytes: log.get(0),
        sealed_bytes: log.get(1),
        last_sealed_at: log.get(2),
    })
}

#[cfg(test)]
mod default_tests {
    use super::*;

    #[test]
    fn sort_orders_parse_from_their_names_only() {
        for o in SortOrder::ALL {
            assert_eq!(SortOrder::parse(o.name()), Ok(o));
        }
        assert_eq!(SortOrder::default(), SortOrder::TraceId);
        let e = SortOrder::parse("trace_id; DROP TABLE x").unwrap_err();
        assert!(
            e.contains("one of trace_id, timestamp, service_name"),
            "{e}"
        );
    }

    #[test]
    fn the_default_seal_after_is_two_days() {
        assert_eq!(default_seal_after(), Duration::days(2));
    }
}
