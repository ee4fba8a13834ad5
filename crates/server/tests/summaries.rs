//! The materialized view path against the on-the-fly path: identical rows for randomized
//! queries (span conditions included), fallbacks when the view cannot answer, reads that do not wait for a
//! concurrent refresh, one refresher at a time, and recovery from a crashed refresher.

mod support;

use std::time::Duration as StdDuration;

use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use store::summaries::{self, RefreshMethod, SummaryConfig};
use store::testing::TestDb;

/// A summary window of `window_days` over spans kept for 7 days.
fn config(window_days: i64) -> SummaryConfig {
    SummaryConfig {
        window: Duration::days(window_days),
        retention: Duration::days(7),
        refresh_interval: Duration::minutes(2),
    }
}

async fn build_view(db: &TestDb, window_days: i64) {
    let mut client = db.client().await;
    summaries::ensure_view(&mut client, &config(window_days))
        .await
        .expect("build view");
}

/// Small deterministic PRNG: the queries are random but reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn random_query(rng: &mut Rng, stamps: &[DateTime<Utc>], window_start: DateTime<Utc>) -> String {
    let mut q = vec!["in:otel_trace_summaries".to_string()];
    let in_window: Vec<&DateTime<Utc>> = stamps.iter().filter(|t| **t > window_start).collect();
    let stamp = |rng: &mut Rng| {
        // Often an exact span time, so inclusive bounds are exercised.
        let t = **rng.pick(&in_window);
        if rng.below(2) == 0 {
            t
        } else {
            t + Duration::milliseconds(rng.below(600_000) as i64 - 300_000).max(window_start - t)
        }
    };
    match rng.below(6) {
        0 => {}
        1 => q.push(format!("time:[{},]", stamp(rng).to_rfc3339())),
        _ => {
            let (a, b) = (stamp(rng), stamp(rng));
            let (a, b) = if a <= b { (a, b) } else { (b, a) };
            q.push(format!("time:[{},{}]", a.to_rfc3339(), b.to_rfc3339()));
        }
    }
    for _ in 0..rng.below(3) {
        let svc = format!("svc-{}", rng.below(20));
        let f = match rng.below(18) {
            16 => format!("!service_name:{svc}"),
            17 => format!("service_name:%vc-{}%", rng.below(3)),
            10 => format!(
                "span.attributes.http.status_code:>={}",
                200 + 100 * rng.below(4)
            ),
            11 => format!("!span.service_name:{svc} span.kind:{}", rng.below(4)),
            12 => format!(
                "span.service_name:{svc} span.duration_ms:>{}",
                rng.below(50)
            ),
            13 => "span.attributes.db.system:(mysql,postgresql) !span.status_code:2".to_string(),
            14 => "span.name:%SELECT% span.resource.service.name:*".to_string(),
            15 => format!(
                "!span.attributes.http.status_code:{}",
                rng.pick(&["200", "404", "503"])
            ),
            0 => format!("root_service_name:{svc}"),
            1 => format!("!root_service_name:{svc}"),
            2 => format!("service_name:{svc}"),
            3 => format!("service_name:({svc},svc-{})", rng.below(20)),
            4 => "root_span_name:%orders%".to_string(),
            5 => format!("status_code:{}", rng.below(3)),
            6 => "error_count:>0".to_string(),
            7 => format!("span_count:>{}", rng.below(10)),
            8 => format!("duration_ms:>{}", rng.below(200)),
            _ => format!("root_span_kind:{}", rng.below(4)),
        };
        q.push(f);
    }
    let keys = [
        "timestamp",
        "duration_ms",
        "span_count",
        "error_count",
        "root_service_name",
    ];
    let dir = |rng: &mut Rng| if rng.below(2) == 0 { "asc" } else { "desc" };
    match rng.below(3) {
        0 => {}
        1 => q.push(format!("sort:{}:{}", rng.pick(&keys), dir(rng))),
        _ => q.push(format!(
            "sort:{}:{},{}:{}",
            rng.pick(&keys),
            dir(rng),
            rng.pick(&keys),
            dir(rng)
        )),
    }
    q.push(format!("limit:{}", 1 + rng.below(150)));
    q.join(" ")
}

/// 300 randomized queries (and their second pages) on the summaries, answered by
/// `summaries_source`, and on the on-the-fly path: identical bodies.
async fn compare_randomized_queries(
    db: &TestDb,
    app: &axum::Router,
    window_start: DateTime<Utc>,
    summaries_source: &str,
) {
    let stamps: Vec<DateTime<Utc>> = support::raw_spans(db)
        .await
        .iter()
        .map(|s| s.timestamp)
        .collect();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut nonempty = 0;
    for _ in 0..300 {
        let q = random_query(&mut rng, &stamps, window_start);
        let view = support::query(app, json!({ "query": q, "source": "summaries" })).await;
        let live = support::query(app, json!({ "query": q, "source": "on_the_fly" })).await;
        assert_eq!(view.status, StatusCode::OK, "{q}: {}", view.body);
        assert_eq!(view.source(), summaries_source, "{q}");
        assert_eq!(live.source(), "on_the_fly", "{q}");
        assert_eq!(view.body, live.body, "{q}");
        nonempty += usize::from(!view.results().is_empty());
        // The second page too, through the cursor.
        if let Some(c) = view.body["pagination"]["next_cursor"].as_str() {
            let v2 = support::query(
                app,
                json!({ "query": q, "source": "summaries", "cursor": c }),
            )
            .await;
            let l2 = support::query(
                app,
                json!({ "query": q, "source": "on_the_fly", "cursor": c }),
            )
            .await;
            assert_eq!(v2.body, l2.body, "{q} page 2");
        }
    }
    assert!(
        nonempty > 150,
        "only {nonempty} of 300 queries returned rows: the comparison proves little"
    );
}

/// The same on the incremental table, where the on-the-fly path aggregates the range
/// widened by the traces' reach and looks up the traces whose extents are longer
/// (`srql-plan/src/trace_reach.rs`): the window-edge traces and the late spans (older
/// than their traces, in sealed days with SRQL_TEST_SEAL=1) make some.
#[tokio::test]
async fn incremental_table_and_widened_on_the_fly_paths_return_identical_rows() {
    let db = TestDb::migrated().await;
    let now = Utc::now();
    let late = support::seed(&db, 15_000, 7, 42).await;
    support::insert(&db, &support::window_edge_traces(now, Duration::days(7))).await;
    let maintenance = summaries::Maintenance {
        mode: summaries::SummaryMode::Incremental,
        drain_interval: Duration::milliseconds(250),
    };
    store::setup::run_with(&db.url, &config(7), &maintenance, false, &mut |_| {})
        .await
        .expect("incremental mode");
    support::insert(&db, &late).await;
    let run = server::scheduler::tick(&db.url)
        .await
        .expect("tick")
        .refresh
        .expect("the service drains");
    assert_eq!(run.outcome, summaries::RunOutcome::Ok, "{run:?}");
    let client = db.client().await;
    let catalog = summaries::catalog(&client).await.expect("catalog");
    assert!(catalog.trace_extents, "the extents are exact");
    let app = support::app(&db, None);
    // A little inside the window, so that every range stays on the table.
    let window_start = Utc::now() - Duration::days(7) + Duration::hours(1);
    compare_randomized_queries(&db, &app, window_start, "summary_table").await;
}

#[tokio::test]
async fn view_and_on_the_fly_paths_return_identical_rows_for_randomized_queries() {
    let db = TestDb::migrated().await;
    let now = Utc::now();
    let late = support::seed(&db, 15_000, 7, 42).await;
    support::insert(&db, &support::window_edge_traces(now, Duration::days(7))).await;
    build_view(&db, 7).await;
    // Late spans (old timestamps) arrive after the first build; the refresh picks them up.
    support::insert(&db, &late).await;
    let client = db.client().await;
    let run = summaries::refresh(&client, RefreshMethod::Concurrently)
        .await
        .unwrap();
    assert_eq!(run.outcome, store::summaries::RunOutcome::Ok, "{run:?}");

    let app = support::app(&db, None);
    let window_start = run.snapshot_at.unwrap() - Duration::days(7);
    compare_randomized_queries(&db, &app, window_start, "materialized_view").await;

    // The trace straddling the window edge is in the view with all its spans.
    let r = support::query(
        &app,
        json!({ "query": format!("in:otel_trace_summaries time:[{},] sort:timestamp:asc limit:500", window_start.to_rfc3339()), "source": "summaries" }),
    )
    .await;
    let straddle: Vec<&Value> = r
        .results()
        .iter()
        .filter(|row| row["trace_id"] == json!("edge0000000000000000000straddle"))
        .collect();
    assert_eq!(straddle.len(), 1);
    assert_eq!(straddle[0]["span_count"], json!(2));
    assert!(r
        .results()
        .iter()
        .all(|row| row["trace_id"] != json!("edge000000000000000000000outside")));
}

#[tokio::test]
async fn falls_back_when_the_view_is_missing_unpopulated_or_the_range_predates_it() {
    let db = TestDb::migrated().await;
    support::seed(&db, 6_000, 4, 9).await;
    let app = support::app(&db, None);
    let client = db.client().await;
    let q = "in:otel_trace_summaries sort:duration_ms:desc limit:50";
    let missing = support::query(&app, json!({ "query": q })).await;
    assert_eq!(missing.source(), "on_the_fly");

    build_view(&db, 2).await;
    let two_days =
        "in:otel_trace_summaries time:last_24h sort:duration_ms:desc limit:50".to_string();
    let ready = support::query(&app, json!({ "query": two_days })).await;
    assert_eq!(ready.source(), "materialized_view");
    assert!(!ready.results().is_empty());

    // The range starts before the 2-day window: the view cannot answer exactly.
    let from = Utc::now() - Duration::days(3);
    let old = format!(
        "in:otel_trace_summaries time:[{},] sort:duration_ms:desc limit:50",
        from.to_rfc3339()
    );
    let r = support::query(&app, json!({ "query": old })).await;
    assert_eq!(r.source(), "on_the_fly", "{}", r.body);
    let all = support::summarize(&support::raw_spans(&db).await);
    let mut want: Vec<&support::Summary> = all.iter().filter(|s| s.timestamp >= from).collect();
    want.sort_by(|a, b| {
        b.duration_ms
            .total_cmp(&a.duration_ms)
            .then(b.trace_id.cmp(&a.trace_id))
    });
    let want: Vec<Value> = want.into_iter().take(50).map(|s| s.to_json()).collect();
    assert_eq!(r.results(), &want);
    // A query without a time filter covers the retention period (7 days), longer than
    // the 2-day window: not covered either.
    assert_eq!(
        support::query(&app, json!({ "query": q })).await.source(),
        "on_the_fly"
    );

    // Unpopulated: the on-the-fly path answers, with the same rows.
    client
        .batch_execute("REFRESH MATERIALIZED VIEW otel_trace_summaries WITH NO DATA")
        .await
        .unwrap();
    let r = support::query(&app, json!({ "query": two_days })).await;
    assert_eq!(r.source(), "on_the_fly");
    assert_eq!(r.body["results"], ready.body["results"]);
    let h = support::send(
        &app,
        axum::http::Request::get("/healthz")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(h.body["summaries"]["state"], json!("unpopulated"));
    // A refresh repopulates it (a plain refresh: CONCURRENTLY needs a populated view).
    let run = summaries::refresh(&client, RefreshMethod::Concurrently)
        .await
        .unwrap();
    assert_eq!(run.outcome, store::summaries::RunOutcome::Ok, "{run:?}");
    assert_eq!(
        support::query(&app, json!({ "query": two_days }))
            .await
            .source(),
        "materialized_view"
    );

    // Missing: same rows again.
    client
        .batch_execute("DROP MATERIALIZED VIEW otel_trace_summaries")
        .await
        .unwrap();
    let r = support::query(&app, json!({ "query": two_days })).await;
    assert_eq!(r.source(), "on_the_fly");
    assert_eq!(r.body["results"], ready.body["results"]);
    let t = support::post(&app, "/translate", json!({ "query": two_days })).await;
    assert!(
        t.body["reason"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{}",
        t.body
    );
}

/// Holds an ACCESS EXCLUSIVE lock on the spans table so a refresh that starts now stays
/// in progress (waiting to read spans) until the returned transaction ends.
async fn hold_spans_lock(db: &TestDb) -> tokio_postgres::Client {
    let blocker = db.client().await;
    blocker
        .batch_execute("BEGIN; LOCK TABLE otel_traces IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    blocker
}

/// Waits until a backend running the refresh procedure is waiting on a lock; its pid.
async fn refresh_backend_waiting(db: &TestDb) -> i32 {
    let client = db.client().await;
    for _ in 0..200 {
        let row = client
            .query_opt(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()
                   AND query LIKE 'CALL srql_refresh_summaries%' AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap();
        if let Some(r) = row {
            return r.get(0);
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    panic!("the refresh never reached its wait");
}

async fn backend_alive(db: &TestDb, pid: i32) -> bool {
    db.client()
        .await
        .query_opt("SELECT 1 FROM pg_stat_activity WHERE pid = $1", &[&pid])
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn reads_complete_during_a_concurrent_refresh_but_wait_for_a_plain_one() {
    let db = TestDb::migrated().await;
    support::seed(&db, 3_000, 2, 21).await;
    build_view(&db, 7).await;
    let q =
        json!({ "query": "in:otel_trace_summaries time:last_24h limit:20", "source": "summaries" });
    let idle = support::query(&support::app(&db, None), q.clone()).await;

    let blocker = hold_spans_lock(&db).await;
    let refresher = db.client().await;
    let concurrent =
        tokio::spawn(
            async move { summaries::refresh(&refresher, RefreshMethod::Concurrently).await },
        );
    let pid = refresh_backend_waiting(&db).await;
    let app = support::app(&db, None);
    let read = tokio::time::timeout(StdDuration::from_secs(20), support::query(&app, q.clone()))
        .await
        .expect("a read during a CONCURRENTLY refresh must not wait for it");
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body["results"], idle.body["results"]);
    assert!(
        backend_alive(&db, pid).await,
        "the refresh was still in progress during the read"
    );
    blocker.batch_execute("COMMIT").await.unwrap();
    let run = concurrent.await.unwrap().unwrap();
    assert_eq!(
        (run.method.as_str(), run.outcome.as_str()),
        ("concurrently", "ok")
    );

    // The contrast that shows the test can fail: a plain refresh blocks readers.
    let blocker = hold_spans_lock(&db).await;
    let refresher = db.client().await;
    let plain =
        tokio::spawn(async move { summaries::refresh(&refresher, RefreshMethod::Full).await });
    refresh_backend_waiting(&db).await;
    let app = support::app(&db, None);
    let blocked =
        tokio::time::timeout(StdDuration::from_secs(2), support::query(&app, q.clone())).await;
    assert!(blocked.is_err(), "a read during a plain refresh waits");
    blocker.batch_execute("COMMIT").await.unwrap();
    assert_eq!(
        plain.await.unwrap().unwrap().outcome,
        store::summaries::RunOutcome::Ok
    );
}

#[tokio::test]
async fn one_refresh_at_a_time_and_a_crashed_refresher_leaves_nothing_stuck() {
    let db = TestDb::migrated().await;
    support::seed(&db, 1_000, 1, 8).await;
    build_view(&db, 7).await;

    let blocker = hold_spans_lock(&db).await;
    let first = db.client().await;
    let running =
        tokio::spawn(async move { summaries::refresh(&first, RefreshMethod::Concurrently).await });
    let pid = refresh_backend_waiting(&db).await;

    // Another instance, and the service scheduler, find the refresh taken.
    let second = db.client().await;
    let skipped = summaries::refresh(&second, RefreshMethod::Concurrently)
        .await
        .unwrap();
    assert_eq!(skipped.outcome, store::summaries::RunOutcome::Skipped);
    let tick = server::scheduler::tick(&db.url).await.unwrap();
    assert_eq!(
        tick.refresh.map(|r| r.outcome),
        Some(store::summaries::RunOutcome::Skipped)
    );

    // The refresher dies mid-way.
    db.client()
        .await
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    assert!(
        running.await.unwrap().is_err(),
        "the killed refresher sees its session end"
    );
    blocker.batch_execute("COMMIT").await.unwrap();
    // Termination is asynchronous: the lock goes when the backend process has exited.
    for _ in 0..100 {
        if !backend_alive(&db, pid).await {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    assert!(!backend_alive(&db, pid).await, "terminated backend exits");

    // Nothing is stuck: the lock died with the session, the next refresh succeeds, and
    // the dead run is marked abandoned.
    let next = summaries::refresh(&second, RefreshMethod::Concurrently)
        .await
        .unwrap();
    assert_eq!(next.outcome, store::summaries::RunOutcome::Ok, "{next:?}");
    let outcomes: Vec<String> = second
        .query("SELECT outcome FROM srql_refresh_runs ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(outcomes, ["ok", "abandoned", "skipped", "skipped", "ok"]);
    let overlapping: i64 = second
        .query_one(
            "SELECT count(*) FROM srql_refresh_runs a JOIN srql_refresh_runs b ON a.id < b.id
             WHERE a.outcome IN ('ok', 'abandoned') AND b.outcome IN ('ok', 'abandoned')
               AND tstzrange(a.started_at, a.finished_at) && tstzrange(b.started_at, b.finished_at)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(overlapping, 0, "no two refreshes ran at once");
}

#[tokio::test]
async fn the_answering_path_and_summary_freshness_are_visible() {
    let db = TestDb::migrated().await;
    support::seed(&db, 1_000, 1, 31).await;
    build_view(&db, 7).await;
    let app = support::app(&db, None);
    let q = json!({ "query": "in:otel_trace_summaries time:last_1h limit:5" });
    let r = support::query(&app, q.clone()).await;
    assert_eq!(r.source(), "materialized_view");
    let age: f64 = r.headers["x-srql-summaries-age-seconds"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.0..60.0).contains(&age), "{age}");
    assert!(r.headers.contains_key("x-srql-summaries-as-of"));
    let lookup = support::query(
        &app,
        json!({ "query": "in:otel_trace_summaries trace_id:abc" }),
    )
    .await;
    assert_eq!(lookup.source(), "on_the_fly");

    let t = support::post(&app, "/translate", q).await;
    assert_eq!(t.body["source"], json!("materialized_view"));
    assert_eq!(t.body["summaries"]["state"], json!("ready"));
    assert_eq!(t.body["summaries"]["kind"], json!("materialized_view"));

    let get = |path: &str| {
        axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let h = support::send(&app, get("/healthz")).await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.body["database"], json!("ok"));
    assert_eq!(h.body["refresh"]["last_success"]["outcome"], json!("ok"));
    assert!(h.body["refresh"]["last_success"]["rows"].as_i64().unwrap() > 0);
    assert!(h.body["refresh"]["last_success_duration_seconds"].is_number());
    assert!(h.body["summaries"]["age_seconds"].is_number());

    let m = support::send(&app, get("/metrics")).await;
    let text = m.body.as_str().unwrap();
    assert!(
        text.contains("srql_queries_total{source=\"materialized_view\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("srql_queries_total{source=\"on_the_fly\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("srql_summary_refresh_duration_seconds "),
        "{text}"
    );
    assert!(text.contains("srql_summary_age_seconds "), "{text}");
}
