//! Incremental summary maintenance against real PostgreSQL: after every drain the summary
//! table equals the on-the-fly aggregation (`srql_plan::summary_sql::aggregate_query`
//! over all spans), whatever the writers did: late spans with old timestamps, duplicate
//! deliveries, traces without a root, concurrent writers, writes addressed to a partition,
//! deletes, updates, truncation, retention drops. A drain that dies mid-batch loses
//! nothing; the switch between modes backfills resumably and never leaves readers without
//! a relation.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use srql_bench::spans::{copy_spans, Arrival};
use srql_plan::schema::SUMMARY_COLUMNS;
use srql_plan::summary_sql;
use store::summaries::{
    self, keys, BackfillProgress, Maintenance, RefreshMethod, RefreshRun, SummaryConfig,
    SummaryMode,
};
use store::testing::TestDb;
use tokio_postgres::Client;
use workload::{Generator, Span, WorkloadConfig};

fn config(window_days: i64) -> SummaryConfig {
    SummaryConfig {
        window: Duration::days(window_days),
        retention: Duration::days(7),
        refresh_interval: Duration::minutes(2),
    }
}

fn incremental() -> Maintenance {
    Maintenance {
        mode: SummaryMode::Incremental,
        drain_interval: Duration::seconds(1),
    }
}

/// A migrated database with day partitions around now and the summaries in incremental
/// mode over a `window_days` window.
async fn incremental_db(window_days: i64) -> (TestDb, Client) {
    let db = TestDb::migrated().await;
    let mut client = db.client().await;
    let now = Utc::now();
    store::partitions::ensure(&client, now - Duration::days(10), now + Duration::days(1))
        .await
        .unwrap();
    summaries::ensure(
        &mut client,
        &config(window_days),
        &incremental(),
        &mut |_| {},
    )
    .await
    .expect("switch to incremental mode");
    (db, client)
}

fn columns() -> String {
    SUMMARY_COLUMNS
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every summary row as text, by trace_id.
async fn table_rows(client: &Client) -> Vec<String> {
    rows_of(
        client,
        &format!("SELECT {} FROM otel_trace_summaries", columns()),
    )
    .await
}

/// What the on-the-fly path computes over all spans, for traces whose latest span is at
/// or after `cutoff` (the window's start as the last drain applied it): the rows the
/// table must hold.
async fn expected_rows(client: &Client, cutoff: DateTime<Utc>) -> Vec<String> {
    let select = format!(
        "SELECT {} FROM ({}) a WHERE a.timestamp >= $1",
        columns(),
        summary_sql::aggregate_query(None)
    );
    client
        .query(
            &format!("SELECT t::text FROM ({select}) t ORDER BY t.trace_id"),
            &[&cutoff],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn rows_of(client: &Client, select: &str) -> Vec<String> {
    // `select` is built in this file from the shared column list.
    client
        .query(
            &format!("SELECT t::text FROM ({select}) t ORDER BY t.trace_id"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn drain(client: &Client) -> RefreshRun {
    let run = summaries::refresh(client, RefreshMethod::Concurrently)
        .await
        .expect("drain");
    assert_eq!(run.outcome, store::summaries::RunOutcome::Ok, "{run:?}");
    assert_eq!(
        run.method,
        store::summaries::RunMethod::Incremental,
        "{run:?}"
    );
    run
}

/// The table equals the on-the-fly rows inside the window of the last successful run.
async fn assert_exact(client: &Client, context: &str) {
    let (last_ok, _) = summaries::last_runs(client).await.unwrap();
    let run = last_ok.expect("a successful run");
    let cutoff = match run.covers_from {
        Some(c) => c,
        // A view: its window as of its snapshot.
        None => {
            let window = summaries::stored_config(client).await.unwrap().window;
            run.snapshot_at.expect("snapshot") - window
        }
    };
    let (got, want) = (
        table_rows(client).await,
        expected_rows(client, cutoff).await,
    );
    if got != want {
        let got_set: BTreeSet<_> = got.iter().collect();
        let want_set: BTreeSet<_> = want.iter().collect();
        let missing: Vec<_> = want_set.difference(&got_set).take(3).collect();
        let extra: Vec<_> = got_set.difference(&want_set).take(3).collect();
        panic!(
            "{context}: table has {} rows, on-the-fly {}; missing {missing:?}; extra {extra:?}",
            got.len(),
            want.len()
        );
    }
}

async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// A hand-made span: `parent` empty or NULL makes a root.
struct S<'a> {
    trace: &'a str,
    span: &'a str,
    parent: Option<&'a str>,
    service: &'a str,
    status: i32,
    at: DateTime<Utc>,
    dur_ms: i64,
}

async fn insert(client: &Client, table: &str, spans: &[S<'_>]) {
    for s in spans {
        let start = s.at.timestamp_nanos_opt().unwrap();
        // `table` is one of this file's literals.
        client
            .execute(
                &format!(
                    "INSERT INTO {table} (timestamp, trace_id, span_id, parent_span_id, name, kind,
                         start_time_unix_nano, end_time_unix_nano, service_name, status_code)
                     VALUES ($1, $2, $3, $4, $5, 2, $6, $7, $8, $9)"
                ),
                &[
                    &s.at,
                    &s.trace,
                    &s.span,
                    &s.parent,
                    &format!("op {}", s.span),
                    &start,
                    &(start + s.dur_ms * 1_000_000),
                    &s.service,
                    &s.status,
                ],
            )
            .await
            .unwrap();
    }
}

fn workload_spans(seed: u64, traces: u64, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Span> {
    Generator::new(WorkloadConfig::new(seed, traces, from, to))
        .flat_map(|t| t.spans)
        .collect()
}

/// Deterministic shuffling and picking for the randomized cases.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[tokio::test]
async fn table_has_the_views_columns_and_indexes() {
    let db = TestDb::migrated().await;
    let mut client = db.client().await;
    summaries::ensure_view(&mut client, &config(7))
        .await
        .unwrap();
    let describe = "SELECT a.attname::text || ' ' || format_type(a.atttypid, a.atttypmod)
                        || coalesce(' collate ' || nullif(co.collname::text, 'default'), '')
                    FROM pg_attribute a LEFT JOIN pg_collation co ON co.oid = a.attcollation
                    WHERE a.attrelid = 'otel_trace_summaries'::regclass AND a.attnum > 0
                      AND NOT a.attisdropped
                    ORDER BY a.attnum";
    let indexes = "SELECT replace(indexdef, 'otel_trace_summaries', 'X') FROM pg_indexes
                   WHERE tablename = 'otel_trace_summaries' ORDER BY indexname";
    let strings =
        |rows: Vec<tokio_postgres::Row>| -> Vec<String> { rows.iter().map(|r| r.get(0)).collect() };
    let view_columns = strings(client.query(describe, &[]).await.unwrap());
    let view_indexes = strings(client.query(indexes, &[]).await.unwrap());

    summaries::ensure(&mut client, &config(7), &incremental(), &mut |_| {})
        .await
        .unwrap();
    let kind: String = client
        .query_one(
            "SELECT relkind::text FROM pg_class WHERE oid = 'otel_trace_summaries'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(kind, "r");
    assert_eq!(
        strings(client.query(describe, &[]).await.unwrap()),
        view_columns
    );
    assert_eq!(
        strings(client.query(indexes, &[]).await.unwrap()),
        view_indexes
    );
    assert_eq!(view_indexes.len(), 4, "{view_indexes:?}");
    // The column list is exactly the shared select list, in order.
    let names: Vec<String> = view_columns
        .iter()
        .map(|c| c.split(' ').next().unwrap_or_default().to_string())
        .collect();
    let mut want: Vec<String> = SUMMARY_COLUMNS.iter().map(|c| c.name.to_string()).collect();
    let mut got = names.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(names.first().map(String::as_str), Some("trace_id"));
}

#[tokio::test]
async fn randomized_workload_with_late_and_duplicate_spans_stays_exact_at_every_drain() {
    let (db, client) = incremental_db(7).await;
    let now = Utc::now();
    let mut spans = workload_spans(11, 400, now - Duration::days(6), now - Duration::hours(1));
    let mut rng = Rng(0x5eed);
    for i in (1..spans.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        spans.swap(i, j);
    }
    // Late spans (the workload's own delayed ones plus a random tenth) are held back and
    // delivered after later drains, with their old timestamps.
    let (late, on_time): (Vec<Span>, Vec<Span>) = spans
        .into_iter()
        .partition(|s| s.arrival_delay_ms > 0 || rng.below(10) == 0);
    assert!(!late.is_empty());
    let rootless_before = count(
        &client,
        "SELECT count(*) FROM otel_trace_summaries WHERE root_span_id IS NULL",
    )
    .await;
    assert_eq!(rootless_before, 0);

    let mut rounds = 0;
    for chunk in on_time.chunks(400) {
        copy_spans(&client, chunk, Arrival::At(Utc::now()))
            .await
            .unwrap();
        // Duplicate delivery: some spans of this chunk arrive again.
        let dups: Vec<&Span> = chunk.iter().filter(|_| rng.below(20) == 0).collect();
        copy_spans(&client, dups, Arrival::At(Utc::now()))
            .await
            .unwrap();
        if rng.below(2) == 0 {
            let run = drain(&client).await;
            assert!(run.rows.unwrap_or(0) > 0, "{run:?}");
            assert_exact(&client, "after a drain of on-time spans").await;
            rounds += 1;
        }
    }
    drain(&client).await;
    assert_exact(&client, "all on-time spans drained").await;
    // With SRQL_TEST_SEAL=1 the late spans below land in sealed (columnar) days.
    let sealed = db.seal_if_requested().await;
    assert!(sealed > 0 || !store::testing::sealing_requested());
    // Traces missing their root so far (late roots included) have NULL root fields, as on
    // the on-the-fly path.
    assert!(
        count(
            &client,
            "SELECT count(*) FROM otel_trace_summaries WHERE root_span_id IS NULL"
        )
        .await
            > 0
    );

    for chunk in late.chunks(50) {
        copy_spans(&client, chunk, Arrival::At(Utc::now()))
            .await
            .unwrap();
        drain(&client).await;
        assert_exact(&client, "after late spans").await;
        rounds += 1;
    }
    assert!(rounds > 3);
    assert_eq!(
        count(&client, "SELECT count(*) FROM srql_summary_log").await,
        0
    );
}

#[tokio::test]
async fn hand_made_cases_match_the_on_the_fly_rows() {
    let (_db, client) = incremental_db(7).await;
    let t = Utc::now() - Duration::hours(3);
    let s = |trace, span, parent, service, status, at, dur_ms| S {
        trace,
        span,
        parent,
        service,
        status,
        at,
        dur_ms,
    };
    insert(
        &client,
        "otel_traces",
        &[
            s("a", "a1", Some(""), "svc-a", 1, t, 50),
            s(
                "a",
                "a2",
                Some("a1"),
                "svc-b",
                2,
                t + Duration::milliseconds(5),
                10,
            ),
            // No root at all.
            s("b", "b2", Some("b1"), "svc-b", 0, t, 20),
            s("b", "b3", Some("b1"), "svc-c", 2, t, 30),
            // A NULL parent is a root too.
            s("c", "c1", None, "svc-c", 1, t, 5),
        ],
    )
    .await;
    drain(&client).await;
    assert_exact(&client, "first drain").await;
    let row = client
        .query_one(
            "SELECT root_span_id, span_count, error_count, service_set
             FROM otel_trace_summaries WHERE trace_id = 'b'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0), None);
    assert_eq!(row.get::<_, i64>(1), 2);
    assert_eq!(row.get::<_, i64>(2), 1);
    assert_eq!(
        row.get::<_, Vec<String>>(3),
        vec!["svc-b".to_string(), "svc-c".into()]
    );

    // The root of `b` arrives late with an older timestamp, and `a1` is delivered twice.
    insert(
        &client,
        "otel_traces",
        &[
            s("b", "b1", Some(""), "svc-a", 1, t - Duration::hours(1), 400),
            s("a", "a1", Some(""), "svc-a", 1, t, 50),
        ],
    )
    .await;
    drain(&client).await;
    assert_exact(&client, "late root and duplicate").await;
    let (root, spans): (Option<String>, i64) = client
        .query_one(
            "SELECT root_span_id, span_count FROM otel_trace_summaries WHERE trace_id = 'b'",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((root.as_deref(), spans), (Some("b1"), 3));
    assert_eq!(
        count(
            &client,
            "SELECT span_count FROM otel_trace_summaries WHERE trace_id = 'a'"
        )
        .await,
        3
    );

    // Late spans far from the rest of their trace: three days earlier (another day
    // partition) and two days ahead (no partition yet: the default one). The recompute
    // must find them and the spans it already knew.
    insert(
        &client,
        "otel_traces",
        &[
            s("a", "a0", Some("a1"), "svc-z", 0, t - Duration::days(3), 1),
            s("a", "a9", Some("a1"), "svc-y", 0, t + Duration::days(2), 1),
        ],
    )
    .await;
    drain(&client).await;
    assert_exact(&client, "spans days apart").await;
    assert_eq!(
        count(
            &client,
            "SELECT span_count FROM otel_trace_summaries WHERE trace_id = 'a'"
        )
        .await,
        5
    );

    // Written straight into a partition, bypassing the parent's triggers.
    let part: String = client
        .query_one(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'otel_traces'::regclass
               AND c.relname = 'otel_traces_p' || to_char($1::timestamptz AT TIME ZONE 'UTC', 'YYYYMMDD')",
            &[&t],
        )
        .await
        .unwrap()
        .get(0);
    insert(&client, &part, &[s("d", "d1", Some(""), "svc-d", 1, t, 1)]).await;
    // Deleted and moved spans: `c` loses its only span, one span of `a` moves to `e`.
    client
        .batch_execute(
            "DELETE FROM otel_traces WHERE trace_id = 'c';
             UPDATE otel_traces SET trace_id = 'e' WHERE span_id = 'a2';",
        )
        .await
        .unwrap();
    drain(&client).await;
    assert_exact(&client, "partition write, delete, update").await;
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM otel_trace_summaries WHERE trace_id IN ('c', 'd', 'e')"
        )
        .await,
        2
    );

    // Truncating a partition removes or shrinks its traces' rows.
    let before = count(&client, "SELECT count(*) FROM otel_trace_summaries").await;
    client
        .batch_execute(&format!("TRUNCATE {part}"))
        .await
        .unwrap();
    drain(&client).await;
    assert_exact(&client, "truncate").await;
    assert!(count(&client, "SELECT count(*) FROM otel_trace_summaries").await < before);
}

#[tokio::test]
async fn writes_are_logged_once_per_statement_and_trace_from_any_path() {
    let (_db, client) = incremental_db(7).await;
    let t = Utc::now() - Duration::hours(1);
    let spans = workload_spans(3, 20, t - Duration::minutes(10), t);
    let traces: BTreeSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    copy_spans(&client, &spans, Arrival::At(Utc::now()))
        .await
        .unwrap();
    // One COPY: one entry per trace, not per span, and none from the partitions' own
    // triggers (they fire only for statements addressed to them).
    assert_eq!(
        count(&client, "SELECT count(*) FROM srql_summary_log").await,
        traces.len() as i64
    );
    // A partition created after capture began gets its triggers at the next drain.
    client
        .execute(
            "SELECT srql_ensure_partition(now() + interval '5 days')",
            &[],
        )
        .await
        .unwrap();
    drain(&client).await;
    let missing = count(
        &client,
        "SELECT count(*) FROM pg_inherits i WHERE i.inhparent = 'otel_traces'::regclass
           AND NOT EXISTS (SELECT 1 FROM pg_trigger t
                           WHERE t.tgrelid = i.inhrelid AND t.tgname = 'srql_summary_inserted')",
    )
    .await;
    assert_eq!(missing, 0);
}

#[tokio::test]
async fn concurrent_writers_and_drains_end_exact() {
    let (db, client) = incremental_db(7).await;
    let now = Utc::now();
    let spans = workload_spans(21, 600, now - Duration::days(5), now - Duration::minutes(5));
    // Four writers each deliver a quarter of the spans in small batches, some twice, the
    // late ones last; a drainer runs throughout.
    let mut quarters: Vec<Vec<Span>> = vec![Vec::new(); 4];
    for (i, s) in spans.into_iter().enumerate() {
        quarters[i % 4].push(s);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let drainer = {
        let url = db.url.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let c = store::db::connect(&url).await.unwrap();
            let mut runs = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let run = summaries::refresh(&c, RefreshMethod::Concurrently)
                    .await
                    .unwrap();
                assert_ne!(run.outcome, store::summaries::RunOutcome::Failed, "{run:?}");
                runs += 1;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            runs
        })
    };
    let mut writers = Vec::new();
    for (w, mut mine) in quarters.into_iter().enumerate() {
        let url = db.url.clone();
        writers.push(tokio::spawn(async move {
            let c = store::db::connect(&url).await.unwrap();
            mine.sort_by_key(|s| s.arrival_delay_ms > 0);
            let mut rng = Rng(w as u64 + 7);
            for batch in mine.chunks(37) {
                copy_spans(&c, batch, Arrival::At(Utc::now()))
                    .await
                    .unwrap();
                if rng.below(4) == 0 {
                    copy_spans(&c, &batch[..batch.len() / 3], Arrival::At(Utc::now()))
                        .await
                        .unwrap();
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let runs = drainer.await.unwrap();
    assert!(runs > 1, "the drainer ran {runs} times");
    drain(&client).await;
    assert_exact(&client, "after concurrent writers").await;
}

#[tokio::test]
async fn a_drain_rolled_back_mid_batch_loses_nothing() {
    let (db, client) = incremental_db(7).await;
    let now = Utc::now();
    let spans = workload_spans(5, 50, now - Duration::days(1), now - Duration::hours(1));
    copy_spans(&client, &spans, Arrival::At(Utc::now()))
        .await
        .unwrap();
    let logged = count(&client, "SELECT count(*) FROM srql_summary_log").await;
    assert!(logged > 0);

    // A batch that claims and recomputes, then its transaction is rolled back.
    let mut other = db.client().await;
    let tx = other.transaction().await.unwrap();
    let claimed: i32 = tx
        .query_one(
            "SELECT claimed FROM srql_summary_drain_batch(100000, now() - interval '7 days')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(i64::from(claimed), logged);
    tx.rollback().await.unwrap();
    assert_eq!(
        count(&client, "SELECT count(*) FROM srql_summary_log").await,
        logged
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM otel_trace_summaries").await,
        0
    );
    drain(&client).await;
    assert_exact(&client, "after the rolled-back batch").await;
}

#[tokio::test]
async fn a_drain_killed_while_holding_its_batch_loses_nothing() {
    let (db, client) = incremental_db(7).await;
    let now = Utc::now();
    let t = now - Duration::hours(2);
    // One trace is summarized already; its row will be locked by a bystander so the next
    // drain blocks in the middle of its batch.
    insert(
        &client,
        "otel_traces",
        &[S {
            trace: "held",
            span: "h1",
            parent: Some(""),
            service: "svc-a",
            status: 1,
            at: t,
            dur_ms: 3,
        }],
    )
    .await;
    drain(&client).await;
    let spans = workload_spans(8, 40, now - Duration::days(2), now - Duration::hours(1));
    copy_spans(&client, &spans, Arrival::At(Utc::now()))
        .await
        .unwrap();
    insert(
        &client,
        "otel_traces",
        &[S {
            trace: "held",
            span: "h2",
            parent: Some("h1"),
            service: "svc-b",
            status: 2,
            at: t,
            dur_ms: 9,
        }],
    )
    .await;

    let mut bystander = db.client().await;
    let lock = bystander.transaction().await.unwrap();
    lock.execute(
        "SELECT 1 FROM otel_trace_summaries WHERE trace_id = 'held' FOR UPDATE",
        &[],
    )
    .await
    .unwrap();

    let drainer = db.client().await;
    let pid: i32 = drainer
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let call = tokio::spawn(async move {
        let r = drainer.execute("CALL srql_refresh_summaries()", &[]).await;
        (r.is_ok(), drainer)
    });
    // Wait until the drainer is stuck on the row lock, i.e. holds its claimed batch.
    let mut waiting = false;
    for _ in 0..200 {
        waiting = client
            .query_one(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1",
                &[&pid],
            )
            .await
            .unwrap()
            .get::<_, Option<bool>>(0)
            .unwrap_or(false);
        if waiting {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(waiting, "the drain never blocked inside its batch");
    // Its claim is invisible to others (uncommitted): the entries are still in the log.
    assert!(count(&client, "SELECT count(*) FROM srql_summary_log").await > 0);
    let killed: bool = client
        // Waits (up to 10 s) until the session is gone and its advisory lock released.
        .query_one("SELECT pg_terminate_backend($1, 10000)", &[&pid])
        .await
        .unwrap()
        .get(0);
    assert!(killed);
    let (ok, _drainer) = call.await.unwrap();
    assert!(!ok, "the killed CALL must fail");
    lock.rollback().await.unwrap();

    let run = drain(&client).await;
    assert!(run.rows.unwrap_or(0) > 0);
    assert_exact(&client, "after the killed drain").await;
    // The killed run was recorded as running and is now marked abandoned.
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM srql_refresh_runs WHERE outcome = 'abandoned'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &client,
            "SELECT span_count FROM otel_trace_summaries WHERE trace_id = 'held'"
        )
        .await,
        2
    );
}

#[tokio::test]
async fn switching_modes_backfills_resumably_and_back() {
    let db = TestDb::migrated().await;
    let mut client = db.client().await;
    let now = Utc::now();
    store::partitions::ensure(&client, now - Duration::days(10), now + Duration::days(1))
        .await
        .unwrap();
    // Traces on every day of the window, some straddling midnight, a few beyond it.
    let spans = workload_spans(31, 900, now - Duration::days(9), now - Duration::minutes(1));
    copy_spans(&client, &spans, Arrival::Simulated)
        .await
        .unwrap();
    summaries::ensure_view(&mut client, &config(7))
        .await
        .unwrap();
    let view_rows = table_rows(&client).await;
    assert!(!view_rows.is_empty());
    assert_eq!(
        store::setup::mode_as_it_is(&db.url).await.unwrap(),
        SummaryMode::MaterializedView,
        "a database with the view keeps it when no mode is asked for"
    );

    // First attempt: dies after two chunks (the callback panics inside the backfill).
    let url = db.url.clone();
    let first = tokio::spawn(async move {
        let mut c = store::db::connect(&url).await.unwrap();
        summaries::ensure(
            &mut c,
            &config(7),
            &incremental(),
            &mut |p: BackfillProgress| {
                assert!(p.done < 2, "simulated crash after {} chunks", p.done);
            },
        )
        .await
    });
    assert!(first.await.is_err(), "the first backfill should have died");
    let progress = summaries::get_setting(&client, keys::BACKFILL)
        .await
        .unwrap()
        .expect("progress recorded");
    assert!(progress.contains("next=2;"), "{progress}");
    assert_eq!(
        store::setup::mode_as_it_is(&db.url).await.unwrap(),
        SummaryMode::Incremental,
        "an interrupted switch resumes when no mode is asked for"
    );
    // Readers still have the view, and its refresh still works.
    let run = summaries::refresh(&client, RefreshMethod::Concurrently)
        .await
        .unwrap();
    assert_eq!(
        (run.method.as_str(), run.outcome.as_str()),
        ("concurrently", "ok")
    );
    assert_exact(&client, "the view, refreshed during the interruption").await;

    // Meanwhile new spans arrive (captured since the first attempt began), including a
    // late span of an old trace.
    let fresh = workload_spans(32, 60, now - Duration::hours(3), now - Duration::minutes(2));
    copy_spans(&client, &fresh, Arrival::At(Utc::now()))
        .await
        .unwrap();
    let old_trace = spans[0].trace_id.clone();
    client
        .execute(
            "INSERT INTO otel_traces (timestamp, trace_id, span_id, parent_span_id, service_name,
                 start_time_unix_nano, end_time_unix_nano)
             VALUES (now() - interval '2 days', $1, 'late-one', 'x', 'svc-late', 1, 2)",
            &[&old_trace],
        )
        .await
        .unwrap();

    // Second attempt resumes at chunk 2.
    let mut reports = Vec::new();
    let built = summaries::ensure(&mut client, &config(7), &incremental(), &mut |p| {
        reports.push(p)
    })
    .await
    .unwrap();
    assert!(built);
    assert_eq!(reports.first().map(|p| p.resumed_from), Some(2));
    assert_eq!(
        reports.last().map(|p| p.done),
        reports.last().map(|p| p.total)
    );
    assert_eq!(
        summaries::get_setting(&client, keys::BACKFILL)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        summaries::stored_maintenance(&client).await.unwrap().mode,
        SummaryMode::Incremental
    );
    // Swapped in vacuumed, so that index-only scans of it need not visit the heap (which
    // pages a VACUUM can mark all-visible depends on the snapshots open meanwhile, so
    // that it ran is what is checked), and vacuumed again at 2% of its rows changed.
    let (vacuumed, options): (bool, Vec<String>) = client
        .query_one(
            "SELECT s.last_vacuum IS NOT NULL, coalesce(c.reloptions, '{}') \
             FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid \
             WHERE s.relid = 'otel_trace_summaries'::regclass",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert!(vacuumed, "the backfilled table was not vacuumed");
    assert!(
        options.contains(&"autovacuum_vacuum_scale_factor=0.02".to_string()),
        "{options:?}"
    );
    let catalog = summaries::catalog(&client).await.unwrap();
    assert!(
        matches!(
            catalog.summaries,
            srql_plan::SummaryState::Ready {
                kind: srql_plan::SummaryKind::Table,
                ..
            }
        ),
        "{catalog:?}"
    );
    drain(&client).await;
    assert_exact(&client, "after the resumed backfill and a drain").await;
    // A trace that ended before the window when the backfill ran gets a late span inside
    // it: its old spans must be found (the backfill recorded where they are).
    let older = spans
        .iter()
        .find(|s| s.trace_id != old_trace && s.timestamp < now - Duration::days(8))
        .map(|s| s.trace_id.clone())
        .expect("a trace before the window");
    client
        .execute(
            "INSERT INTO otel_traces (timestamp, trace_id, span_id, parent_span_id, service_name,
                 start_time_unix_nano, end_time_unix_nano)
             VALUES (now() - interval '1 day', $1, 'late-two', 'x', 'svc-late', 1, 2)",
            &[&older],
        )
        .await
        .unwrap();
    drain(&client).await;
    assert_exact(&client, "late span of a trace from before the window").await;
    let spans_now: i64 = client
        .query_one(
            "SELECT span_count FROM otel_trace_summaries WHERE trace_id = $1",
            &[&older],
        )
        .await
        .unwrap()
        .get(0);
    assert!(spans_now > 1, "{spans_now}");
    // Running it again is a no-op.
    assert!(
        !summaries::ensure(&mut client, &config(7), &incremental(), &mut |_| {})
            .await
            .unwrap()
    );

    // A wider window rebuilds the table (drains held off meanwhile).
    summaries::ensure(&mut client, &config(9), &incremental(), &mut |_| {})
        .await
        .unwrap();
    drain(&client).await;
    assert_exact(&client, "after widening the window").await;

    // And back to the view: capture off, log empty, same rows.
    assert!(summaries::ensure_view(&mut client, &config(9))
        .await
        .unwrap());
    let kind: String = client
        .query_one(
            "SELECT relkind::text FROM pg_class WHERE oid = 'otel_trace_summaries'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(kind, "m");
    assert!(!store::incremental::capture_enabled(&client).await.unwrap());
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'srql_summary_%'"
        )
        .await,
        0
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM srql_summary_log").await,
        0
    );
    assert_exact(&client, "back on the view").await;
    let run = summaries::refresh(&client, RefreshMethod::Concurrently)
        .await
        .unwrap();
    assert_eq!(
        (run.method.as_str(), run.outcome.as_str()),
        ("concurrently", "ok")
    );
}

#[tokio::test]
async fn rows_past_the_window_are_pruned_and_stay_out() {
    let (_db, client) = incremental_db(7).await;
    let now = Utc::now();
    let recent = workload_spans(41, 40, now - Duration::hours(20), now - Duration::hours(1));
    let older = workload_spans(42, 40, now - Duration::days(4), now - Duration::days(3));
    copy_spans(
        &client,
        recent.iter().chain(&older),
        Arrival::At(Utc::now()),
    )
    .await
    .unwrap();
    drain(&client).await;
    assert_exact(&client, "seven-day window").await;
    let before = count(&client, "SELECT count(*) FROM otel_trace_summaries").await;

    // The window shrinks to one day: the next drain prunes what fell out, in batches.
    summaries::set_setting(&client, keys::WINDOW_SECS, "86400")
        .await
        .unwrap();
    let run = drain(&client).await;
    assert_exact(&client, "one-day window").await;
    let after = count(&client, "SELECT count(*) FROM otel_trace_summaries").await;
    assert!(after < before && after > 0, "{before} -> {after}");
    let cutoff = run.covers_from.expect("the drain records its cutoff");
    assert!(cutoff > now - Duration::days(1) - Duration::minutes(1));
    let catalog = summaries::catalog(&client).await.unwrap();
    match catalog.summaries {
        srql_plan::SummaryState::Ready { covers_from, .. } => assert!(covers_from >= cutoff),
        other => panic!("{other:?}"),
    }
    // A late span of a pruned trace does not bring its row back.
    client
        .execute(
            "INSERT INTO otel_traces (timestamp, trace_id, span_id, service_name)
             VALUES (now() - interval '3 days', $1, 'late', 'svc-x')",
            &[&older[0].trace_id],
        )
        .await
        .unwrap();
    drain(&client).await;
    assert_exact(&client, "late span of a pruned trace").await;
}

#[tokio::test]
async fn dropping_expired_partitions_recomputes_straddling_traces() {
    let (db, client) = incremental_db(7).await;
    let now = Utc::now();
    let old = now - Duration::days(9);
    client
        .execute("SELECT srql_ensure_partition($1)", &[&old])
        .await
        .unwrap();
    let s = |span, parent, at| S {
        trace: "straddler",
        span,
        parent,
        service: "svc-a",
        status: 1,
        at,
        dur_ms: 10,
    };
    insert(
        &client,
        "otel_traces",
        &[
            s("r", Some(""), old),
            s("c", Some("r"), now - Duration::hours(1)),
        ],
    )
    .await;
    drain(&client).await;
    assert_eq!(
        count(
            &client,
            "SELECT span_count FROM otel_trace_summaries WHERE trace_id = 'straddler'"
        )
        .await,
        2
    );
    // A trace wholly inside the day that will expire.
    insert(
        &client,
        "otel_traces",
        &[S {
            trace: "expired",
            span: "x",
            parent: Some(""),
            service: "svc-a",
            status: 1,
            at: old,
            dur_ms: 1,
        }],
    )
    .await;
    drain(&client).await;
    let extents =
        "SELECT count(*) FROM srql_summary_extent WHERE trace_id IN ('straddler', 'expired')";
    assert_eq!(count(&client, extents).await, 2);
    // Retention drops sealed days the same way.
    let sealed = db.seal_if_requested().await;
    assert!(sealed > 0 || !store::testing::sealing_requested());
    let report = store::incremental::upkeep(&client, Duration::days(7))
        .await
        .unwrap();
    assert!(report.dropped >= 1, "{report:?}");
    drain(&client).await;
    assert_exact(&client, "after the retention drop").await;
    // No partition can hold the expired trace's spans any more: its extent is forgotten.
    assert_eq!(count(&client, extents).await, 1);
    assert_eq!(
        count(
            &client,
            "SELECT span_count FROM otel_trace_summaries WHERE trace_id = 'straddler'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn freshness_reports_pending_arrivals_and_drain_lag_until_caught_up() {
    let (_db, client) = incremental_db(7).await;
    let idle = summaries::freshness(&client).await.unwrap();
    assert_eq!(idle.mode, SummaryMode::Incremental);
    assert_eq!(idle.pending_entries, 0);
    assert_eq!(idle.oldest_pending_seconds, None);
    assert!(idle.age_seconds.is_some());

    let now = Utc::now();
    let spans = workload_spans(51, 30, now - Duration::hours(2), now - Duration::minutes(1));
    copy_spans(&client, &spans, Arrival::At(Utc::now()))
        .await
        .unwrap();
    let waiting = summaries::freshness(&client).await.unwrap();
    assert!(waiting.pending_entries > 0);
    assert!(waiting.oldest_pending_seconds.is_some());

    let before = Utc::now();
    let run = drain(&client).await;
    assert_eq!(run.pending, Some(0));
    let lag = run
        .lag_max_secs
        .expect("a drain that applied entries measures lag");
    assert!(lag >= 0.0);
    // Nothing pending: the snapshot is the end of the drain, not an arrival.
    let as_of = run.snapshot_at.expect("snapshot");
    assert!(as_of >= before);
    let after = summaries::freshness(&client).await.unwrap();
    assert_eq!(after.pending_entries, 0);
    assert!(after.last_lag.is_some());

    // With arrivals still waiting, the snapshot is no later than the oldest of them.
    let mut seen = BTreeSet::new();
    let three: Vec<&Span> = spans
        .iter()
        .filter(|s| seen.insert(s.trace_id.clone()))
        .take(3)
        .collect();
    copy_spans(&client, three, Arrival::At(Utc::now()))
        .await
        .unwrap();
    let oldest: DateTime<Utc> = client
        .query_one("SELECT min(logged_at) FROM srql_summary_log", &[])
        .await
        .unwrap()
        .get(0);
    summaries::set_setting(&client, keys::DRAIN_BATCH_SIZE, "1")
        .await
        .unwrap();
    summaries::set_setting(&client, keys::DRAIN_MAX_SECS, "0")
        .await
        .unwrap();
    let partial = drain(&client).await;
    assert!(partial.pending.unwrap_or(0) > 0, "{partial:?}");
    assert!(partial.snapshot_at.expect("snapshot") <= oldest);

    // A one-shot command drains until nothing is left: one batch of one trace a drain.
    let runs = summaries::refresh_caught_up(&client, RefreshMethod::Concurrently)
        .await
        .unwrap();
    assert!(runs.len() >= 2, "{runs:?}");
    assert!(runs
        .iter()
        .all(|r| r.method == store::summaries::RunMethod::Incremental));
    assert_eq!(runs.last().and_then(|r| r.pending), Some(0), "{runs:?}");
    assert_eq!(
        summaries::freshness(&client).await.unwrap().pending_entries,
        0
    );
    assert_exact(&client, "caught up").await;
}

#[tokio::test]
async fn full_refresh_in_incremental_mode_resyncs_in_place() {
    let (_db, client) = incremental_db(7).await;
    let now = Utc::now();
    let spans = workload_spans(61, 60, now - Duration::days(2), now - Duration::minutes(1));
    copy_spans(&client, &spans, Arrival::At(Utc::now()))
        .await
        .unwrap();
    drain(&client).await;
    // A write that bypassed capture (triggers disabled by hand) and a damaged row.
    client
        .batch_execute(
            "ALTER TABLE otel_traces DISABLE TRIGGER srql_summary_inserted;
             INSERT INTO otel_traces (timestamp, trace_id, span_id, service_name)
                 VALUES (now() - interval '1 hour', 'uncaptured', 'u1', 'svc-u');
             ALTER TABLE otel_traces ENABLE TRIGGER srql_summary_inserted;
             UPDATE otel_trace_summaries SET span_count = 999
                 WHERE trace_id = (SELECT min(trace_id) FROM otel_trace_summaries);",
        )
        .await
        .unwrap();
    let run = summaries::refresh(&client, RefreshMethod::Full)
        .await
        .unwrap();
    assert_eq!(
        (run.method.as_str(), run.outcome.as_str()),
        ("resync", "ok")
    );
    assert_exact(&client, "after a resync").await;
}
