//! Sealing against real columnar storage (citus_columnar): old days become columnar with
//! every span and index kept; spans arriving for a day while it is sealed, and after, are
//! stored once and reach their summaries; a lookup by id bounded by the trace's extent
//! still finds a late span in a sealed day; an interrupted seal resumes; without the
//! extension sealing is off and says so.

use chrono::{Duration, Utc};
use srql_plan::schema::SUMMARY_COLUMNS;
use srql_plan::summary_sql;
use store::sealing::{self, SealRound};
use store::summaries::{self, Maintenance, RefreshMethod, RunOutcome, SummaryConfig, SummaryMode};
use store::testing::TestDb;
use tokio_postgres::Client;

const RETENTION: Duration = Duration::days(7);

/// A migrated database with partitions for the last 8 days. Fails, saying what to
/// install, without citus_columnar: these tests are the sealed path's proof.
async fn sealable_db() -> (TestDb, Client) {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    assert!(
        sealing::available(&client).await.unwrap(),
        "these tests need citus_columnar: run scripts/ensure-deps (Citus 13, see README)"
    );
    let now = Utc::now();
    store::partitions::ensure(&client, now - Duration::days(8), now + Duration::days(1))
        .await
        .unwrap();
    // As `srql migrate` does: what a superuser made is handed to the owner role.
    client
        .batch_execute("SELECT srql_adopt_objects()")
        .await
        .unwrap();
    (db, client)
}

/// `per_day` spans (4 to a trace) on each of the days `days_ago` before today, through
/// `table`. `tag` keeps ids of separate calls apart.
async fn fill(client: &Client, table: &str, days_ago: &[i32], per_day: i32, tag: &str) {
    // `table` is one of this file's literals.
    client
        .execute(
            &format!(
                "INSERT INTO {table} (timestamp, trace_id, span_id, parent_span_id, name, kind,
                     start_time_unix_nano, end_time_unix_nano, service_name, status_code,
                     attributes)
                 SELECT ts, md5($3 || d::text || (i / 4)), md5($3 || 's' || d::text || i),
                        CASE WHEN i % 4 <> 0 THEN md5($3 || 's' || d::text || (i - i % 4)) END,
                        'op ' || (i % 7), 2,
                        (extract(epoch FROM ts) * 1e9)::bigint,
                        (extract(epoch FROM ts) * 1e9)::bigint + (i % 97) * 1000000,
                        'svc-' || (i % 5), CASE WHEN i % 13 = 0 THEN 2 ELSE 0 END,
                        jsonb_build_object('n', i, 'tag', $3)
                 FROM (SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                              - k * interval '1 day' AS d
                       FROM unnest($1::int[]) k) days,
                      generate_series(0, $2 - 1) i,
                      LATERAL (SELECT d + (i % 80000) * interval '1 second' + interval '1 hour' AS ts) t"
            ),
            &[&days_ago, &per_day, &tag],
        )
        .await
        .unwrap();
}

/// Every span as text in a fixed order: equal before and after means nothing was lost,
/// duplicated or changed.
async fn all_spans(client: &Client) -> Vec<String> {
    client
        .query(
            // Without the resource id migration 0032 adds (NULL on rows stored before it).
            "SELECT (to_jsonb(t) - 'resource_id')::text AS row FROM otel_traces t
             ORDER BY trace_id, span_id, row",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Partition name => access method.
async fn access_methods(client: &Client) -> Vec<(String, String)> {
    client
        .query(
            "SELECT c.relname::text, a.amname::text FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_am a ON a.oid = c.relam
             WHERE i.inhparent = 'otel_traces'::regclass ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn day_name(days_ago: i64) -> String {
    let day = Utc::now().date_naive() - Duration::days(days_ago);
    format!("otel_traces_p{}", day.format("%Y%m%d"))
}

async fn seal(client: &mut Client, seal_after: Duration) -> SealRound {
    sealing::seal_due(client, seal_after, RETENTION)
        .await
        .expect("seal round")
}

#[tokio::test]
async fn old_days_become_columnar_with_every_span_and_index() {
    let (db, admin) = sealable_db().await;
    fill(&admin, "otel_traces", &[1, 2, 3, 4, 5], 2000, "a").await;
    let before = all_spans(&admin).await;
    // The service seals as the writer: no superuser needed.
    let mut writer = store::db::connect(&db.writer_url()).await.unwrap();
    let round = seal(&mut writer, Duration::days(2)).await;
    let mut sealed: Vec<_> = round.sealed.iter().map(|d| d.partition.clone()).collect();
    sealed.sort();
    assert_eq!(
        sealed,
        vec![day_name(5), day_name(4), day_name(3)],
        "{round:?}"
    );
    assert!(round.postponed.is_empty(), "{round:?}");
    for day in &round.sealed {
        assert_eq!(day.spans, 2000);
        assert_eq!(day.late_spans, 0);
        assert!(
            day.sealed_bytes < day.heap_bytes,
            "columnar must be smaller: {day:?}"
        );
    }
    for (part, am) in access_methods(&admin).await {
        let want = if sealed.contains(&part) {
            "columnar"
        } else {
            "heap"
        };
        assert_eq!(am, want, "{part}");
    }
    assert_eq!(all_spans(&admin).await, before, "sealing changed the spans");

    // A sealed day keeps only the lookup by trace_id, under the usual name (citus_columnar
    // could not hold 0016's GIN index anyway); a heap day keeps every index
    // srql_span_indexes lists.
    let indexes = |part: String| {
        let admin = &admin;
        async move {
            admin
                .query(
                    "SELECT replace(indexname::text, $1, 'DAY') FROM pg_indexes
                     WHERE tablename = $1 ORDER BY 1",
                    &[&part],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(indexes(day_name(4)).await, vec!["DAY_trace_id_idx"]);
    assert_eq!(
        indexes(day_name(1)).await,
        vec![
            "DAY_attributes_idx",
            "DAY_name_service_idx",
            "DAY_root_timestamp_idx",
            "DAY_service_duration_idx",
            "DAY_service_timestamp_idx",
            "DAY_timestamp_idx",
            "DAY_trace_id_idx"
        ],
        "0001's three, 0008's root-span index, 0011's two search indexes and 0016's GIN"
    );

    // The reader finds a sealed trace by id.
    let reader = store::db::connect(&db.reader_url()).await.unwrap();
    let trace: String = admin
        .query_one(
            &format!("SELECT trace_id FROM {} LIMIT 1", day_name(4)),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let n: i64 = reader
        .query_one(
            "SELECT count(*) FROM otel_traces WHERE trace_id = $1",
            &[&trace],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 4);

    // Sealed days take no updates or deletes (nothing of ours issues them).
    let update = admin
        .execute(
            &format!("UPDATE {} SET name = 'x' WHERE trace_id = $1", day_name(4)),
            &[&trace],
        )
        .await;
    assert!(update.is_err(), "columnar refuses updates");

    // Nothing more is due; the status says what happened.
    let again = seal(&mut writer, Duration::days(2)).await;
    assert!(
        again.sealed.is_empty() && again.postponed.is_empty(),
        "{again:?}"
    );
    let status = sealing::status(&reader).await.unwrap();
    assert!(status.available && status.message.is_none(), "{status:?}");
    assert_eq!(status.sealed_days, 3, "{status:?}");
    assert!(status.in_progress.is_empty());
    assert!(status.sealed_bytes > 0 && status.sealed_bytes < status.sealed_heap_bytes);

    // Retention drops sealed days like any other (here the oldest sealed one).
    store::partitions::upkeep(&writer, Duration::days(4))
        .await
        .unwrap();
    let status = sealing::status(&reader).await.unwrap();
    assert_eq!(status.sealed_days, 2, "{status:?}");
}

fn summary_columns() -> String {
    SUMMARY_COLUMNS
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ")
}

async fn rows(client: &Client, select: &str) -> Vec<String> {
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

/// After a drain, the summary table equals the on-the-fly aggregation of every span.
async fn assert_summaries_exact(client: &Client, context: &str) {
    let run = summaries::refresh(client, RefreshMethod::Concurrently)
        .await
        .unwrap();
    assert_eq!(run.outcome, RunOutcome::Ok, "{run:?}");
    let table = rows(
        client,
        &format!("SELECT {} FROM otel_trace_summaries", summary_columns()),
    )
    .await;
    let on_the_fly = rows(
        client,
        &format!(
            "SELECT {} FROM ({}) a",
            summary_columns(),
            summary_sql::aggregate_query(None)
        ),
    )
    .await;
    assert_eq!(table.len(), on_the_fly.len(), "{context}: row counts");
    assert!(table == on_the_fly, "{context}: rows differ");
}

/// Summaries maintained incrementally: capture on, so spans are logged and extents kept.
async fn incremental(client: &mut Client) {
    summaries::ensure(
        client,
        &SummaryConfig {
            window: Duration::days(7),
            retention: RETENTION,
            refresh_interval: Duration::minutes(2),
        },
        &Maintenance {
            mode: SummaryMode::Incremental,
            drain_interval: Duration::seconds(1),
        },
        &mut |_| {},
    )
    .await
    .unwrap();
}

/// One span of `trace` at noon `days_ago` days before today, straight into otel_traces.
async fn span_at(client: &Client, trace: &str, span: &str, days_ago: i32) {
    client
        .execute(
            "INSERT INTO otel_traces (timestamp, trace_id, span_id, name, kind,
                 start_time_unix_nano, end_time_unix_nano, service_name, status_code)
             SELECT ts, $1, $2, 'late', 2, (extract(epoch FROM ts) * 1e9)::bigint,
                    (extract(epoch FROM ts) * 1e9)::bigint + 1000000, 'svc-late', 0
             FROM (SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                          - $3 * interval '1 day' + interval '12 hours' AS ts) t",
            &[&trace, &span, &f64::from(days_ago)],
        )
        .await
        .unwrap();
}

/// The span ids a lookup by id returns through the service's path (catalog, plan,
/// render, exec), and whether the plan was bounded by the trace's extent; and the span
/// count of its on-the-fly summary.
async fn looked_up(client: &Client, trace: &str) -> (Vec<String>, bool, i64) {
    let catalog = summaries::catalog(client).await.unwrap();
    let run = |text: String| {
        let catalog = catalog.clone();
        async move {
            let plan = srql_plan::compile(
                &text,
                &catalog,
                &srql_plan::PageRequest::default(),
                &srql_lang::Limits::default(),
                Utc::now(),
            )
            .unwrap()
            .pin_source(srql_plan::SourcePreference::OnTheFly)
            .unwrap();
            let bounded = plan.trace_extents;
            (
                store::exec::run(client, &plan).await.unwrap().results,
                bounded,
            )
        }
    };
    let (spans, bounded) = run(format!("in:traces trace_id:\"{trace}\" limit:100")).await;
    let mut ids: Vec<String> = spans
        .iter()
        .map(|r| r["span_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let (summary, _) = run(format!("in:otel_trace_summaries trace_id:\"{trace}\"")).await;
    assert_eq!(summary.len(), 1, "{summary:?}");
    (ids, bounded, summary[0]["span_count"].as_i64().unwrap())
}

/// The day partitions PostgreSQL plans for a lookup of `trace` as the service runs it
/// (bounds read first, then bound as values).
async fn planned_days(client: &Client, trace: &str) -> Vec<String> {
    let catalog = summaries::catalog(client).await.unwrap();
    let plan = srql_plan::compile(
        &format!("in:traces trace_id:\"{trace}\" limit:100"),
        &catalog,
        &srql_plan::PageRequest::default(),
        &srql_lang::Limits::default(),
        Utc::now(),
    )
    .unwrap();
    assert!(srql_plan::extent_query(&plan).is_some(), "a bounded lookup");
    let plan = store::exec::with_extent_read(client, &plan).await.unwrap();
    let sql = srql_plan::render(&plan);
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        sql.params.iter().map(store::exec::to_sql).collect();
    let mut days: Vec<String> = client
        .query(&format!("EXPLAIN (COSTS OFF) {}", sql.sql), &params)
        .await
        .unwrap()
        .iter()
        .flat_map(|r| {
            let line: String = r.get(0);
            line.split_whitespace()
                .filter(|w| {
                    w.strip_prefix("otel_traces_p")
                        .is_some_and(|d| d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()))
                })
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    days.sort();
    days.dedup();
    days
}

#[tokio::test]
async fn a_late_span_in_a_sealed_day_outside_the_trace_extent_is_found_by_id() {
    let (db, mut client) = sealable_db().await;
    incremental(&mut client).await;
    // Looked up as the service looks up: read-only, as srql_reader.
    let reader = store::db::connect(&db.reader_url()).await.unwrap();
    fill(&client, "otel_traces", &[3, 4], 100, "a").await;
    // A trace whose spans all lie yesterday (a heap day, not due), drained: its extent
    // covers yesterday only.
    let trace = "0123456789abcdef0123456789abcdef";
    span_at(&client, trace, "s1", 1).await;
    span_at(&client, trace, "s2", 1).await;
    assert_summaries_exact(&client, "loaded").await;
    let round = seal(&mut client, Duration::days(1)).await;
    assert!(
        round.sealed.iter().any(|d| d.partition == day_name(4)),
        "{round:?}"
    );
    // Bounded before planning: the sealed days are not even planned.
    assert_eq!(planned_days(&reader, trace).await, vec![day_name(1)]);

    // A span of it four days back, into a sealed day, and not drained yet: only the log
    // knows it.
    span_at(&client, trace, "s3", 4).await;
    let all = vec!["s1".to_string(), "s2".into(), "s3".into()];
    let (ids, bounded, count) = looked_up(&reader, trace).await;
    assert!(bounded, "incremental capture on one node bounds lookups");
    assert_eq!((ids, count), (all.clone(), 3), "before the drain");

    // Drained, the extent reaches the sealed day.
    assert_summaries_exact(&client, "late span drained").await;
    let (ids, _, count) = looked_up(&reader, trace).await;
    assert_eq!((ids, count), (all.clone(), 3), "after the drain");

    // A trace neither the extent nor the log knows (spans written with capture
    // bypassed) is looked for in every day.
    client
        .batch_execute(&format!(
            "SET session_replication_role = replica;
             INSERT INTO {} (timestamp, trace_id, span_id, name, kind, start_time_unix_nano,
                 end_time_unix_nano, service_name, status_code)
             SELECT timestamp, 'fedcba9876543210fedcba9876543210', span_id, name, kind,
                    start_time_unix_nano, end_time_unix_nano, service_name, status_code
             FROM otel_traces WHERE trace_id = '{trace}' AND span_id = 's3';
             RESET session_replication_role;",
            day_name(4)
        ))
        .await
        .unwrap();
    let (ids, _, count) = looked_up(&reader, "fedcba9876543210fedcba9876543210").await;
    assert_eq!(
        (ids, count),
        (vec!["s3".to_string()], 1),
        "unknown to the extents"
    );
}

#[tokio::test]
async fn spans_arriving_while_and_after_a_day_is_sealed_are_kept_once_and_summarised() {
    let (_db, mut client) = sealable_db().await;
    incremental(&mut client).await;
    fill(&client, "otel_traces", &[3, 4], 1000, "a").await;
    assert_summaries_exact(&client, "loaded").await;
    let part = day_name(3);

    sealing::begin(&mut client, &part).await.unwrap();
    // Committed after the trigger but before the copy's snapshot: the copy sees them.
    fill(&client, "otel_traces", &[3], 40, "b").await;
    sealing::copy(&mut client, &part).await.unwrap();
    // Committed after the copy: only the side table has them. Through the parent, into
    // the partition directly, and into traces the copy already holds.
    let other = store::db::connect(&_db.url).await.unwrap();
    fill(&other, "otel_traces", &[3], 40, "c").await;
    fill(&other, &part, &[3], 40, "d").await;
    fill(&other, "otel_traces", &[3], 8, "a").await;
    let before = all_spans(&client).await;
    let day = sealing::seal_day(&mut client, &part)
        .await
        .unwrap()
        .expect("sealed");
    assert_eq!(day.late_spans, 40 + 40 + 8, "{day:?}");
    assert_eq!(day.spans, 1000 + 40 + 40 + 40 + 8, "{day:?}");
    assert_eq!(
        all_spans(&client).await,
        before,
        "a late span was lost or doubled"
    );
    assert_summaries_exact(&client, "sealed with late spans").await;

    // After sealing: the columnar day takes inserts, captured like any other.
    fill(&other, "otel_traces", &[3], 12, "e").await;
    fill(&other, &part, &[3], 12, "f").await;
    fill(&other, "otel_traces", &[3], 4, "a").await;
    assert_summaries_exact(&client, "late spans into the sealed day").await;
    let am: String = client
        .query_one(
            "SELECT a.amname::text FROM pg_class c JOIN pg_am a ON a.oid = c.relam
             WHERE c.relname = $1",
            &[&part],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(am, "columnar");
    // A full resync reads sealed days too.
    let run = summaries::refresh(&client, RefreshMethod::Full)
        .await
        .unwrap();
    assert_eq!(run.outcome, RunOutcome::Ok, "{run:?}");
    assert_summaries_exact(&client, "after a resync").await;
}

#[tokio::test]
async fn an_interrupted_seal_resumes_at_the_next_round() {
    let (db, admin) = sealable_db().await;
    fill(&admin, "otel_traces", &[3, 4], 500, "a").await;
    let (three, four) = (day_name(3), day_name(4));

    // Died after beginning: a stage and side table exist, nothing copied.
    let mut first = db.client().await;
    sealing::begin(&mut first, &three).await.unwrap();
    // Died after copying: only the swap is left, and a late span came meanwhile.
    sealing::begin(&mut first, &four).await.unwrap();
    sealing::copy(&mut first, &four).await.unwrap();
    drop(first);
    fill(&admin, "otel_traces", &[3, 4], 3, "late").await;
    // A copy that died mid-way rolls back: the day is begun again.
    let mut second = db.client().await;
    {
        let tx = second
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .start()
            .await
            .unwrap();
        tx.execute("SELECT srql_seal_copy($1)", &[&three])
            .await
            .unwrap();
        // Dropped without commit.
    }
    let status = sealing::status(&admin).await.unwrap();
    // Oldest day first.
    assert_eq!(status.in_progress, vec![four.clone(), three.clone()]);
    let before = all_spans(&admin).await;

    let round = seal(&mut second, Duration::days(2)).await;
    let mut sealed: Vec<_> = round
        .sealed
        .iter()
        .map(|d| (d.partition.clone(), d.spans))
        .collect();
    sealed.sort();
    assert_eq!(sealed, vec![(four, 503), (three, 503)], "{round:?}");
    assert_eq!(all_spans(&admin).await, before);
    let leftovers: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname ~ '^otel_traces_p\\d{8}_(seal|late)$'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(leftovers, 0, "stages and side tables are gone");
    assert!(sealing::status(&admin)
        .await
        .unwrap()
        .in_progress
        .is_empty());
}

#[tokio::test]
async fn a_reader_holding_the_day_postpones_the_swap_instead_of_waiting() {
    let (db, admin) = sealable_db().await;
    fill(&admin, "otel_traces", &[3], 200, "a").await;
    let mut reader = store::db::connect(&db.reader_url()).await.unwrap();
    let tx = reader.transaction().await.unwrap();
    tx.query("SELECT count(*) FROM otel_traces", &[])
        .await
        .unwrap();
    let mut sealer = db.client().await;
    let started = std::time::Instant::now();
    let round = seal(&mut sealer, Duration::days(2)).await;
    assert!(round.sealed.is_empty(), "{round:?}");
    assert_eq!(round.postponed.len(), 1, "{round:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "a busy day is postponed, not waited for"
    );
    tx.rollback().await.unwrap();
    let round = seal(&mut sealer, Duration::days(2)).await;
    assert_eq!(round.sealed.len(), 1, "{round:?}");
}

#[tokio::test]
async fn without_the_extension_sealing_is_off_and_says_so() {
    let db = TestDb::migrated().await;
    let mut client = db.client().await;
    client
        .batch_execute("DROP EXTENSION IF EXISTS citus_columnar CASCADE")
        .await
        .unwrap();
    let round = seal(&mut client, Duration::days(2)).await;
    assert!(round.unavailable, "{round:?}");
    let status = sealing::status(&client).await.unwrap();
    assert!(!status.available);
    assert!(
        status
            .message
            .as_deref()
            .is_some_and(|m| m.contains("citus_columnar")),
        "{status:?}"
    );
}

/// Partitions whose indexes are not exactly what `srql_span_indexes` gives them (every
/// row on a heap day, the `on_sealed` rows on a sealed one): (day, has, wants).
async fn indexes_off_the_list(client: &Client) -> Vec<(String, String, String)> {
    client
        .query(
            r#"WITH parts AS (
                   SELECT c.oid, c.relname::text AS part, a.amname = 'columnar' AS sealed
                   FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                   JOIN pg_am a ON a.oid = c.relam
                   WHERE i.inhparent = 'otel_traces'::regclass),
               has AS (
                   SELECT p.part, coalesce(array_agg(ic.relname::text COLLATE "C"
                                                     ORDER BY ic.relname::text COLLATE "C")
                                           FILTER (WHERE ic.oid IS NOT NULL), '{}') AS ix
                   FROM parts p LEFT JOIN pg_index x ON x.indrelid = p.oid
                   LEFT JOIN pg_class ic ON ic.oid = x.indexrelid GROUP BY p.part),
               wants AS (
                   SELECT p.part, coalesce(array_agg((p.part || '_' || s.suffix) COLLATE "C"
                                                     ORDER BY (p.part || '_' || s.suffix) COLLATE "C")
                                           FILTER (WHERE s.suffix IS NOT NULL), '{}') AS ix
                   FROM parts p LEFT JOIN srql_span_indexes s ON s.on_sealed OR NOT p.sealed
                   GROUP BY p.part)
               SELECT h.part, h.ix::text, w.ix::text FROM has h JOIN wants w USING (part)
               WHERE h.ix <> w.ix ORDER BY 1"#,
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// Days sealed before 0012 carry the parent's indexes (all of them, attached to the
/// parent's); migrating must leave every day with exactly its rows of the one list and
/// the parent with none, losing no span, and later seals must follow the list. The old
/// state is built by applying the migrations up to 0011 only (`run_list` on a prefix)
/// and sealing with 0009's functions.
#[tokio::test]
async fn migration_0012_over_days_sealed_under_0009_ends_in_the_one_list_state() {
    let db = TestDb::empty().await;
    let mut client = db.client().await;
    let before_0012 = store::migrate::MIGRATIONS
        .iter()
        .position(|m| m.version == 12)
        .expect("migration 0012");
    store::migrate::run_list(&mut client, &store::migrate::MIGRATIONS[..before_0012])
        .await
        .unwrap();
    assert!(
        sealing::available(&client).await.unwrap(),
        "this test needs citus_columnar: run scripts/ensure-deps (Citus 13, see README)"
    );
    let now = Utc::now();
    store::partitions::ensure(&client, now - Duration::days(8), now + Duration::days(1))
        .await
        .unwrap();
    fill(&client, "otel_traces", &[0, 2, 3, 4], 200, "a").await;
    let round = seal(&mut client, Duration::days(2)).await;
    assert_eq!(round.sealed.len(), 2, "{round:?}");
    let old_indexes: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_index WHERE indrelid = $1::text::regclass",
            &[&day_name(3)],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        old_indexes > 1,
        "a day sealed under 0009 has the parent's indexes"
    );
    let spans = all_spans(&client).await;

    store::migrate::run(&mut client).await.unwrap();
    let on_parent: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_index WHERE indrelid = 'otel_traces'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(on_parent, 0, "indexes left declared on otel_traces");
    let on_sealed: Vec<String> = client
        .query(
            "SELECT definition FROM srql_span_indexes WHERE on_sealed",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(on_sealed.len(), 1, "{on_sealed:?}");
    assert!(on_sealed[0].ends_with("(trace_id)"), "{on_sealed:?}");
    assert_eq!(indexes_off_the_list(&client).await, vec![]);
    assert_eq!(all_spans(&client).await, spans, "migrating changed spans");

    // Sealed after the migration: the same state.
    let round = seal(&mut client, Duration::days(1)).await;
    assert_eq!(
        round
            .sealed
            .iter()
            .map(|d| d.partition.clone())
            .collect::<Vec<_>>(),
        vec![day_name(2)]
    );
    assert_eq!(indexes_off_the_list(&client).await, vec![]);
    assert_eq!(all_spans(&client).await, spans, "sealing changed spans");
}

#[tokio::test]
async fn a_day_is_sealed_in_the_order_asked_for_and_an_unknown_order_is_refused() {
    let (_db, mut client) = sealable_db().await;
    fill(&client, "otel_traces", &[3, 4], 400, "o").await;
    let before = all_spans(&client).await;
    let (by_time, by_trace) = (day_name(3), day_name(4));
    sealing::seal_day_sorted(&mut client, &by_time, sealing::SortOrder::Timestamp)
        .await
        .unwrap()
        .expect("sealed");
    sealing::seal_day(&mut client, &by_trace)
        .await
        .unwrap()
        .expect("sealed");
    assert_eq!(
        all_spans(&client).await,
        before,
        "a span was lost or doubled"
    );
    // A columnar day is read back in the order it was written.
    let in_order = |part: &str, key: &str| {
        format!(
            "SELECT bool_and(ok) FROM (SELECT {key} >= lag({key}) OVER () IS NOT FALSE AS ok
             FROM {part}) x"
        )
    };
    for (part, key, want) in [
        (&by_time, "timestamp", true),
        (&by_time, "trace_id", false),
        (&by_trace, "trace_id", true),
    ] {
        let ordered: bool = client
            .query_one(&in_order(part, key), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(ordered, want, "{part} read back ordered by {key}");
    }

    let part = day_name(5);
    fill(&client, "otel_traces", &[5], 10, "u").await;
    sealing::begin(&mut client, &part).await.unwrap();
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await
        .unwrap();
    let e = tx
        .query_one("SELECT srql_seal_copy($1, 'trace_id desc')", &[&part])
        .await
        .unwrap_err();
    assert!(
        e.as_db_error()
            .is_some_and(|d| d.message().contains("unknown sort order")),
        "{e}"
    );
}
