//! Distributed mode on a real Citus cluster (a coordinator and two workers, started by
//! `store::distributed_testing`): `srql migrate` distributes spans and summaries by
//! trace_id, co-located; capture sees every writer through the coordinator (the COPY of
//! OTLP and the loaders, plain INSERT); drains run on the shards and leave the summary
//! table equal to the on-the-fly aggregate, with late and duplicate spans.

use chrono::{DateTime, Duration, Utc};
use srql_bench::spans::{copy_spans, Arrival};
use srql_plan::schema::SUMMARY_COLUMNS;
use srql_plan::summary_sql;
use store::distributed::Distribution;
use store::distributed_testing::CitusTestDb;
use store::summaries::{Maintenance, RefreshMethod, RunMethod, RunOutcome, SummaryConfig};
use store::testing::TestDb;
use tokio_postgres::Client;
use workload::{Generator, Span, WorkloadConfig};

fn config() -> SummaryConfig {
    SummaryConfig {
        window: Duration::days(3),
        retention: Duration::days(7),
        refresh_interval: Duration::minutes(2),
    }
}

fn incremental() -> Maintenance {
    Maintenance {
        mode: store::summaries::SummaryMode::Incremental,
        drain_interval: Duration::seconds(1),
    }
}

async fn migrate(db: &CitusTestDb) -> store::setup::SetupReport {
    store::setup::run_distributed(
        &db.url,
        &config(),
        &incremental(),
        false,
        &mut |_| {},
        Some(Distribution::Citus),
    )
    .await
    .expect("distributed migrate")
}

fn workload_spans(seed: u64, traces: u64, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Span> {
    Generator::new(WorkloadConfig::new(seed, traces, from, to))
        .flat_map(|t| t.spans)
        .collect()
}

fn columns() -> String {
    SUMMARY_COLUMNS
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ")
}

async fn rows(client: &Client, select: &str, cutoff: DateTime<Utc>) -> Vec<String> {
    // `select` is built in this file from the shared column list.
    client
        .query(
            &format!(
                "SELECT t::text FROM ({select}) t WHERE t.timestamp >= $1 ORDER BY t.trace_id"
            ),
            &[&cutoff],
        )
        .await
        .expect("read summary rows")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Drains, then: the table holds exactly the on-the-fly rows inside the window the
/// drain applied, and the log is empty.
async fn drain_and_check(client: &Client, context: &str) -> usize {
    let run = store::summaries::refresh(client, RefreshMethod::Concurrently)
        .await
        .expect("drain");
    assert_eq!(run.outcome, RunOutcome::Ok, "{context}: {run:?}");
    assert_eq!(run.method, RunMethod::Incremental, "{context}: {run:?}");
    let cutoff = run.covers_from.expect("a drain records its window");
    let got = rows(
        client,
        &format!("SELECT {} FROM otel_trace_summaries", columns()),
        cutoff,
    )
    .await;
    let want = rows(
        client,
        &format!(
            "SELECT {} FROM ({}) a",
            columns(),
            summary_sql::aggregate_query(None)
        ),
        cutoff,
    )
    .await;
    assert_eq!(got.len(), want.len(), "{context}: row count");
    assert!(
        got == want,
        "{context}: summary rows differ from the on-the-fly aggregate"
    );
    let pending: i64 = client
        .query_one("SELECT count(*) FROM srql_summary_log", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(pending, 0, "{context}: log drained");
    got.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_distributes_spans_and_summaries_co_located() {
    let db = CitusTestDb::empty().await;
    let report = migrate(&db).await;
    assert!(report.distributed);
    assert!(report.migrations_applied.contains(&14), "{report:?}");
    let client = db.client().await;
    let tables: Vec<(String, String, i32)> = client
        .query(
            "SELECT logicalrelid::regclass::text, column_to_column_name(logicalrelid, partkey),
                    colocationid
             FROM pg_dist_partition
             WHERE logicalrelid::regclass::text IN
                   ('otel_traces', 'otel_trace_summaries', 'srql_summary_log', 'srql_summary_extent')
             ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(tables.len(), 4, "{tables:?}");
    assert!(tables.iter().all(|t| t.1 == "trace_id"), "{tables:?}");
    assert!(
        tables.iter().all(|t| t.2 == tables[0].2),
        "co-located: {tables:?}"
    );
    let kind: String = client
        .query_one(
            "SELECT relkind::text FROM pg_class WHERE oid = 'otel_traces'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(kind, "p", "otel_traces stays partitioned by day");
    let day_partitions: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'otel_traces'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(day_partitions >= 7, "{day_partitions} partitions");
    // Shards are spread over both workers.
    let nodes: i64 = client
        .query_one(
            "SELECT count(DISTINCT nodeport) FROM citus_shards
             WHERE table_name = 'otel_trace_summaries'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(nodes, 2);
    // A second migrate changes nothing.
    let again = migrate(&db).await;
    assert!(
        again.migrations_applied.is_empty() && !again.view_built,
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_mode_is_refused_on_citus_naming_incremental_mode() {
    let db = CitusTestDb::empty().await;
    // Found without being asked: a coordinator with workers is distributed.
    let err = store::setup::run_with(
        &db.url,
        &config(),
        &Maintenance::default(),
        false,
        &mut |_| {},
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("--summary-mode incremental"), "{err}");
    let distributed: bool = db
        .client()
        .await
        .query_one("SELECT EXISTS (SELECT 1 FROM pg_dist_partition)", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!distributed, "refused before anything was distributed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_for_citus_without_it_names_what_is_missing() {
    let db = TestDb::empty().await;
    let err = store::setup::run_distributed(
        &db.url,
        &config(),
        &incremental(),
        false,
        &mut |_| {},
        Some(Distribution::Citus),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("CREATE EXTENSION citus"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_writer_is_captured_and_drains_are_exact() {
    let db = CitusTestDb::empty().await;
    migrate(&db).await;
    let client = db.client().await;
    let writer = store::db::connect(&db.writer_url())
        .await
        .expect("writer login");
    let now = Utc::now();

    // The COPY the OTLP receivers and the loaders use, through the coordinator, as the
    // writer login.
    let spans = workload_spans(17, 300, now - Duration::days(2), now);
    copy_spans(&writer, &spans, Arrival::At(now)).await.unwrap();
    let traces = drain_and_check(&client, "after COPY").await;
    assert!(traces > 250, "{traces} traces summarized");

    // Duplicate delivery: the same spans again (a retried export).
    copy_spans(&writer, &spans[..500], Arrival::At(now))
        .await
        .unwrap();
    drain_and_check(&client, "after duplicates").await;

    // Late spans: old timestamps joining existing traces, and one before the window.
    writer
        .batch_execute(&format!(
            "INSERT INTO otel_traces (timestamp, trace_id, span_id, name, service_name,
                                      start_time_unix_nano, end_time_unix_nano, status_code)
             SELECT now() - interval '36 hours', trace_id, 'late' || trace_id, 'late', 'late-svc',
                    min(start_time_unix_nano) - 5000000000, max(end_time_unix_nano) + 1, 2
             FROM otel_traces WHERE trace_id IN ('{}', '{}') GROUP BY trace_id;
             INSERT INTO otel_traces (timestamp, trace_id, span_id, name)
             VALUES (now() - interval '5 days', 'old-trace', 'old-span', 'old');",
            spans[0].trace_id,
            spans[spans.len() - 1].trace_id
        ))
        .await
        .unwrap();
    drain_and_check(&client, "after late spans").await;
    let old: i64 = client
        .query_one(
            "SELECT count(*) FROM otel_trace_summaries WHERE trace_id = 'old-trace'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(old, 0, "a trace ending before the window has no row");

    // Deleted spans: a trace left without spans loses its row.
    writer
        .execute(
            "DELETE FROM otel_traces WHERE trace_id = $1",
            &[&spans[0].trace_id],
        )
        .await
        .unwrap();
    drain_and_check(&client, "after a delete").await;

    // A resync (`srql refresh --full`) rebuilds the same rows.
    let run = store::summaries::refresh(&client, RefreshMethod::Full)
        .await
        .unwrap();
    assert_eq!(run.outcome, RunOutcome::Ok, "{run:?}");
    drain_and_check(&client, "after a resync").await;
}

/// Traces with spans but no extent, and traces with a span outside their extent: both
/// 0 while 0004's invariant holds (and the log is drained).
async fn extent_misses(client: &Client) -> (i64, i64) {
    let r = client
        .query_one(
            "SELECT count(*) FILTER (WHERE x.trace_id IS NULL),
                    count(*) FILTER (WHERE x.first_ts > s.lo OR x.last_ts < s.hi)
             FROM (SELECT trace_id, min(timestamp) AS lo, max(timestamp) AS hi
                   FROM otel_traces GROUP BY trace_id) s
             LEFT JOIN srql_summary_extent x USING (trace_id)",
            &[],
        )
        .await
        .expect("compare extents with spans");
    (r.get(0), r.get(1))
}

/// The shard drains read each trace's spans only within its extent (and plan only the
/// days the batch's extents reach): a late span days before its trace, a delete, a trace
/// whose extent is missing (a database drained before extents were kept on Citus, or one
/// pruned) and a shard left without its anchor must all still give exact rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drains_bounded_by_extents_stay_exact() {
    let db = CitusTestDb::empty().await;
    migrate(&db).await;
    let client = db.client().await;
    let writer = store::db::connect(&db.writer_url())
        .await
        .expect("writer login");
    let now = Utc::now();
    let spans = workload_spans(23, 200, now - Duration::hours(6), now);
    copy_spans(&writer, &spans, Arrival::At(now)).await.unwrap();
    let traces = drain_and_check(&client, "after COPY").await;
    assert_eq!(
        extent_misses(&client).await,
        (0, 0),
        "every drained trace has its extent"
    );

    // A late span two days before the rest of its trace: the recompute must reach both
    // days, its new entry's and the extent's.
    let (a, b) = (&spans[0].trace_id, &spans[spans.len() - 1].trace_id);
    let late = |ids: &[&String], tag: &str| {
        format!(
            "INSERT INTO otel_traces (timestamp, trace_id, span_id, name, service_name,
                                      start_time_unix_nano, end_time_unix_nano, status_code)
             SELECT min(timestamp) - interval '2 days', trace_id, '{tag}' || trace_id, 'late',
                    'late-svc', min(start_time_unix_nano) - 172800000000000,
                    max(end_time_unix_nano) + 1, 2
             FROM otel_traces WHERE trace_id IN ('{}') GROUP BY trace_id",
            ids.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("', '")
        )
    };
    writer.batch_execute(&late(&[a, b], "late-")).await.unwrap();
    assert_eq!(drain_and_check(&client, "after late spans").await, traces);

    // A delete logs no span times: the recompute reads within the stored extent.
    writer
        .execute(
            "DELETE FROM otel_traces WHERE trace_id = $1 AND span_id = 'late-' || $1",
            &[a],
        )
        .await
        .unwrap();
    drain_and_check(&client, "after deleting the late span").await;

    // An upgrade: the drain before migration 29 kept no extents on Citus. Migrating
    // rebuilds them from the spans, so a late span for a trace drained before the upgrade
    // is recomputed with all its spans, not only the new one's day.
    client
        .batch_execute(
            "DROP TABLE srql_drain_anchors;
             DROP FUNCTION srql_drain_anchors_fill();
             DROP FUNCTION srql_summary_prune_task(text, timestamptz, integer);
             DELETE FROM srql_summary_extent;
             DELETE FROM srql_schema_migrations WHERE version = 29;",
        )
        .await
        .unwrap();
    let report = migrate(&db).await;
    assert_eq!(report.migrations_applied, vec![29], "{report:?}");
    let (c, d) = (
        &spans[spans.len() / 2].trace_id,
        &spans[spans.len() / 3].trace_id,
    );
    writer
        .batch_execute(&late(&[c, d], "late2-"))
        .await
        .unwrap();
    writer
        .execute(
            "DELETE FROM otel_traces WHERE span_id = 'late-' || $1",
            &[b],
        )
        .await
        .unwrap();
    drain_and_check(&client, "after upgrading").await;
    // A delete for a trace without an extent (one pruned, or deleted by hand) reads
    // every day rather than taking the trace for empty, and records the extent found.
    client
        .execute("DELETE FROM srql_summary_extent WHERE trace_id = $1", &[c])
        .await
        .unwrap();
    writer
        .execute(
            "DELETE FROM otel_traces WHERE span_id = 'late2-' || $1",
            &[c],
        )
        .await
        .unwrap();
    drain_and_check(&client, "after a delete without an extent").await;
    assert_eq!(
        extent_misses(&client).await,
        (0, 0),
        "every trace's spans inside its extent"
    );

    // A shard left without an anchor (a split would do that) still drains.
    client
        .batch_execute("DELETE FROM srql_drain_anchors WHERE trace_id IN (SELECT min(trace_id) FROM srql_drain_anchors)")
        .await
        .unwrap();
    let more = workload_spans(24, 100, now - Duration::hours(1), now);
    copy_spans(&writer, &more, Arrival::At(now)).await.unwrap();
    drain_and_check(&client, "after losing an anchor").await;
    let (anchors, shards): (i64, i64) = client
        .query_one(
            "SELECT (SELECT count(*) FROM srql_drain_anchors),
                    (SELECT count(*) FROM pg_dist_shard
                     WHERE logicalrelid = 'srql_summary_log'::regclass)",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(anchors, shards, "one anchor per shard again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_loaded_before_distribution_are_summarized() {
    let db = CitusTestDb::empty().await;
    // Single-node first (no workers known to this check: asked for nothing, found
    // nothing, as long as the coordinator has no workers it is not distributed)...
    let mut client = db.client().await;
    store::migrate::run(&mut client).await.unwrap();
    let now = Utc::now();
    store::partitions::ensure(&client, now - Duration::days(3), now)
        .await
        .unwrap();
    let spans = workload_spans(5, 120, now - Duration::days(1), now);
    copy_spans(&client, &spans, Arrival::At(now)).await.unwrap();
    // ...then the distributed migrate finds the spans, distributes them and summarizes
    // them all in its first drain.
    let report = migrate(&db).await;
    assert!(report.view_built);
    let summarized: i64 = client
        .query_one("SELECT count(*) FROM otel_trace_summaries", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(summarized, 120);
    drain_and_check(&client, "after distributing").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_and_drains_stay_exact() {
    let db = CitusTestDb::empty().await;
    migrate(&db).await;
    let now = Utc::now();
    // Three writers; the second and third share traces (retried exports of one batch
    // arriving at once), all while drains run.
    let batches = [
        workload_spans(31, 150, now - Duration::days(1), now),
        workload_spans(32, 150, now - Duration::days(2), now),
        workload_spans(32, 150, now - Duration::days(2), now),
    ];
    let mut writers = Vec::new();
    for spans in batches {
        let url = db.writer_url();
        writers.push(tokio::spawn(async move {
            let writer = store::db::connect(&url).await.expect("writer login");
            for chunk in spans.chunks(200) {
                copy_spans(&writer, chunk, Arrival::At(now))
                    .await
                    .expect("concurrent COPY");
            }
        }));
    }
    let client = db.client().await;
    while writers.iter().any(|w| !w.is_finished()) {
        let run = store::summaries::refresh(&client, RefreshMethod::Concurrently)
            .await
            .expect("drain during writes");
        assert_ne!(run.outcome, RunOutcome::Failed, "{run:?}");
    }
    for w in writers {
        w.await.expect("writer task");
    }
    drain_and_check(&client, "after concurrent writers").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_drain_loses_nothing() {
    let db = CitusTestDb::empty().await;
    migrate(&db).await;
    let now = Utc::now();
    let writer = store::db::connect(&db.writer_url())
        .await
        .expect("writer login");
    let spans = workload_spans(41, 600, now - Duration::days(2), now);
    copy_spans(&writer, &spans, Arrival::At(now)).await.unwrap();
    let client = db.client().await;
    // Small batches make the drain take several rounds, so the kill lands inside it.
    client
        .batch_execute(
            "INSERT INTO srql_settings (key, value) VALUES ('drain_batch_size', '20')
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        )
        .await
        .unwrap();
    let drainer = store::db::connect(&db.url).await.expect("drain session");
    let pid: i32 = drainer
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let drain =
        tokio::spawn(async move { drainer.batch_execute("CALL srql_refresh_summaries()").await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    client
        .execute("SELECT pg_terminate_backend($1::integer)", &[&pid])
        .await
        .unwrap();
    let _killed = tokio::time::timeout(std::time::Duration::from_secs(30), drain)
        .await
        .expect("the killed drain returns within 30 s")
        .expect("drain task");
    // Whether the kill landed inside the drain or after it, the next drains must make
    // the table exact: every shard's claim and upsert commit together or not at all.
    // The killed session holds the refresh lock until its backend has exited, which
    // may be after its client saw the connection close.
    let gone = async {
        loop {
            let alive: bool = client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1::integer)",
                    &[&pid],
                )
                .await
                .unwrap()
                .get(0);
            if !alive {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), gone)
        .await
        .expect("the killed backend exits within 30 s");
    client
        .batch_execute("DELETE FROM srql_settings WHERE key = 'drain_batch_size'")
        .await
        .unwrap();
    drain_and_check(&client, "after a killed drain").await;
}

/// What one loop of the growth test did while the cluster grew.
#[derive(Debug, Default)]
struct Loop {
    rounds: usize,
    errors: Vec<String>,
}

/// Growing the cluster: a third worker joins and the shards are rebalanced onto it while
/// a writer copies spans through the coordinator, a reader pages summaries and looks
/// traces up, and drains run. Afterwards every acknowledged span is stored once and every
/// summary row equals the on-the-fly aggregate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_a_worker_and_rebalancing_during_ingest_loses_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let db = CitusTestDb::empty().await;
    migrate(&db).await;
    let now = Utc::now();
    let writer = store::db::connect(&db.writer_url())
        .await
        .expect("writer login");
    let before = workload_spans(51, 200, now - Duration::days(2), now);
    copy_spans(&writer, &before, Arrival::At(now))
        .await
        .unwrap();
    let client = db.client().await;
    drain_and_check(&client, "before growing").await;
    let new_port = i32::from(db.add_worker().await);

    let moved = Arc::new(AtomicBool::new(false));
    // The writer: a batch of new traces per COPY. A COPY that fails is retried, as an
    // exporter retries; only what was acknowledged must be stored.
    let writing = {
        let moved = moved.clone();
        tokio::spawn(async move {
            let mut acknowledged = 0usize;
            let mut log = Loop::default();
            let mut seed = 1000;
            // A few batches after the moves, so writes to moved shards are covered too.
            let mut after = 0;
            while after < 5 {
                let spans = workload_spans(seed, 20, now - Duration::days(2), now);
                match copy_spans(&writer, &spans, Arrival::At(now)).await {
                    Ok(_) => {
                        acknowledged += spans.len();
                        seed += 1;
                    }
                    Err(e) => log.errors.push(e.to_string()),
                }
                log.rounds += 1;
                assert!(log.errors.len() < 50, "writes keep failing: {log:?}");
                if moved.load(Ordering::SeqCst) {
                    after += 1;
                }
            }
            (acknowledged, log)
        })
    };
    let reading = {
        let moved = moved.clone();
        let url = db.reader_url();
        let trace_id = before[0].trace_id.clone();
        tokio::spawn(async move {
            let reader = store::db::connect(&url).await.expect("reader login");
            let mut log = Loop::default();
            while !moved.load(Ordering::SeqCst) {
                let page = reader
                    .query(
                        "SELECT trace_id FROM otel_trace_summaries
                         ORDER BY timestamp DESC, trace_id DESC LIMIT 20",
                        &[],
                    )
                    .await;
                let lookup = reader
                    .query(
                        "SELECT span_id FROM otel_traces WHERE trace_id = $1",
                        &[&trace_id],
                    )
                    .await;
                match (page, lookup) {
                    (Ok(p), Ok(l)) if !p.is_empty() && !l.is_empty() => {}
                    other => log.errors.push(format!("{other:?}")),
                }
                log.rounds += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            log
        })
    };
    let draining = {
        let moved = moved.clone();
        let url = db.url.clone();
        tokio::spawn(async move {
            let drainer = store::db::connect(&url).await.expect("drain session");
            let mut log = Loop::default();
            while !moved.load(Ordering::SeqCst) {
                match store::summaries::refresh(&drainer, RefreshMethod::Concurrently).await {
                    Ok(run) if run.outcome != RunOutcome::Failed => {}
                    other => log.errors.push(format!("{other:?}")),
                }
                log.rounds += 1;
            }
            log
        })
    };

    // Moves co-located shard groups (every day partition's shards of spans, log,
    // extents and summaries together). Block-writes mode: writes to a shard being moved
    // wait for it, which the harness's WAL level (minimal) allows; logical mode needs
    // wal_level = logical (docs/scale-out.md).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let job: i64 = client
        .query_one(
            "SELECT citus_rebalance_start(shard_transfer_mode => 'block_writes')",
            &[],
        )
        .await
        .expect("rebalance starts")
        .get(0);
    wait_for_job(&client, job, std::time::Duration::from_secs(60)).await;
    moved.store(true, Ordering::SeqCst);
    let (acknowledged, written) = writing.await.expect("writer task");
    let read = reading.await.expect("reader task");
    let drained = draining.await.expect("drain task");
    eprintln!("growth: writer {written:?}, reader {read:?}, drains {drained:?}");
    assert!(read.errors.is_empty(), "queries kept answering: {read:?}");
    assert!(
        drained.errors.is_empty(),
        "drains kept working: {drained:?}"
    );
    assert!(written.rounds > 5 && read.rounds > 0 && drained.rounds > 0);

    let on_new: i64 = client
        .query_one(
            "SELECT count(*) FROM citus_shards
             WHERE nodeport = $1 AND table_name = 'otel_trace_summaries'::regclass",
            &[&new_port],
        )
        .await
        .unwrap()
        .get(0);
    assert!(on_new > 0, "the rebalance moved shards to the new worker");
    let stored: i64 = client
        .query_one("SELECT count(*) FROM otel_traces", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        stored as usize,
        before.len() + acknowledged,
        "every acknowledged span stored once"
    );
    drain_and_check(&client, "after growing the cluster").await;
}

/// Waits for a Citus background job (the rebalancer's) to finish; fails, with its tasks'
/// states and messages, when it fails or outlasts `limit`.
async fn wait_for_job(client: &Client, job: i64, limit: std::time::Duration) {
    let started = std::time::Instant::now();
    loop {
        let state: String = client
            .query_one(
                "SELECT state::text FROM pg_dist_background_job WHERE job_id = $1",
                &[&job],
            )
            .await
            .expect("job state")
            .get(0);
        if state == "finished" {
            return;
        }
        let tasks: Vec<String> = client
            .query(
                "SELECT format('%s %s: %s', task_id, status, coalesce(message, ''))
                 FROM pg_dist_background_task WHERE job_id = $1 ORDER BY task_id",
                &[&job],
            )
            .await
            .expect("job tasks")
            .iter()
            .map(|r| r.get(0))
            .collect();
        let waits: Vec<String> = client
            .query(
                "SELECT format('%s %s %s: %s', pid, state, wait_event, left(query, 120))
                 FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
                &[],
            )
            .await
            .expect("lock waits")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(
            !matches!(
                state.as_str(),
                "failed" | "cancelled" | "failing" | "cancelling"
            ),
            "rebalance job {state}: {tasks:#?}"
        );
        assert!(
            started.elapsed() < limit,
            "rebalance job still {state} after {limit:?}: {tasks:#?}, lock waits {waits:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Upkeep through the coordinator, as the service's writer login runs it: the days
/// ahead are created distributed (with shards and the capture trigger), a day past
/// retention is dropped with its shards, summaries stay exact; sealing refuses, saying
/// why, in its round and in the status `/healthz` shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upkeep_keeps_days_distributed_and_sealing_is_refused() {
    let db = CitusTestDb::empty().await;
    migrate(&db).await;
    let client = db.client().await;
    let writer = store::db::connect(&db.writer_url())
        .await
        .expect("writer login");
    let now = Utc::now();
    let expired = now - Duration::days(10);
    store::partitions::ensure(&writer, expired, expired)
        .await
        .unwrap();
    let expired_day = store::partitions::partition_name(&client, expired.date_naive())
        .await
        .unwrap();
    writer
        .execute(
            "INSERT INTO otel_traces (timestamp, trace_id, span_id, name)
             VALUES ($1, 'expired-trace', 'expired-span', 'old')",
            &[&expired],
        )
        .await
        .unwrap();
    let spans = workload_spans(61, 100, now - Duration::days(2), now);
    copy_spans(&writer, &spans, Arrival::At(now)).await.unwrap();
    drain_and_check(&client, "before upkeep").await;

    let report = store::partitions::upkeep(&writer, config().retention)
        .await
        .expect("upkeep as the writer login");
    assert!(report.dropped >= 1, "{report:?}");
    let days = store::partitions::list(&client).await.unwrap();
    assert!(
        !days.contains(&expired_day),
        "{expired_day} dropped: {days:?}"
    );
    let ahead = store::partitions::partition_name(
        &client,
        (now + Duration::days(store::partitions::DAYS_AHEAD)).date_naive(),
    )
    .await
    .unwrap();
    assert!(days.contains(&ahead), "{ahead} created ahead: {days:?}");
    let local: Vec<String> = client
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'otel_traces'::regclass
               AND NOT EXISTS (SELECT 1 FROM pg_dist_partition p WHERE p.logicalrelid = c.oid)",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(local.is_empty(), "every day is distributed: {local:?}");
    let orphans: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_dist_shard s
             WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = s.logicalrelid)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(orphans, 0, "the dropped day's shards went with it");
    let old: i64 = client
        .query_one(
            "SELECT count(*) FROM otel_traces WHERE trace_id = 'expired-trace'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(old, 0);
    // A span for the day created ahead goes to its shards and is captured there.
    writer
        .execute(
            "INSERT INTO otel_traces (timestamp, trace_id, span_id, name)
             VALUES ($1, 'ahead-trace', 'ahead-span', 'ahead')",
            &[&(now + Duration::days(store::partitions::DAYS_AHEAD))],
        )
        .await
        .unwrap();
    let logged: i64 = client
        .query_one(
            "SELECT count(*) FROM srql_summary_log WHERE trace_id = 'ahead-trace'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(logged, 1, "the new day's shards carry the capture trigger");
    drain_and_check(&client, "after upkeep").await;

    let mut sealer = db.client().await;
    let round = store::sealing::seal_due(&mut sealer, Duration::zero(), config().retention)
        .await
        .expect("a sealing round");
    assert!(round.unavailable && round.sealed.is_empty(), "{round:?}");
    assert_eq!(
        round.unavailable_because,
        Some(store::sealing::DISTRIBUTED),
        "{round:?}"
    );
    let status = store::sealing::status(&client).await.unwrap();
    assert!(!status.available, "{status:?}");
    assert_eq!(
        status.message.as_deref(),
        Some(store::sealing::DISTRIBUTED),
        "{status:?}"
    );
}
