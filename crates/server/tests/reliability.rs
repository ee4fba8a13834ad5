//! The API under load and under database faults, over real HTTP: many more clients than
//! connections, queries blocked in PostgreSQL (a table lock held by the test), abandoned
//! requests, and a private cluster frozen, crashed and restarted under the service.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use server::{AppState, ServiceConfig};
use store::embedded::{EmbeddedCluster, EmbeddedOptions};
use store::testing::TestDb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// The cheap query of the report: answered from the summaries.
const CHEAP: &str = "in:otel_trace_summaries time:last_1h limit:5";
/// A read of span rows that may scan (its filter is not served in timestamp order by an
/// index): runs in the on-the-fly lane and blocks while `otel_traces` is locked.
const SPANS: &str = "in:traces time:last_1h kind:2 limit:5";

struct Service {
    addr: SocketAddr,
    _stop: watch::Sender<bool>,
}

async fn serve(url: &str, pool_size: usize, config: ServiceConfig) -> Service {
    let pool = store::db::pool(url, pool_size).expect("pool");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let addr = listener.local_addr().expect("address");
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(server::run(listener, AppState::new(pool, config), stop_rx));
    Service { addr, _stop: stop }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    retry_after: Option<String>,
    body: Value,
    elapsed: Duration,
}

/// Starts a request and returns the open connection, without reading the answer.
async fn send(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> TcpStream {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("connect to the service");
    let body = body.map(Value::to_string).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(format!("{head}{body}").as_bytes())
        .await
        .expect("send request");
    stream
}

/// One request on its own connection; panics if no answer comes within 60 s (a hang).
async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Reply {
    let started = Instant::now();
    let exchange = async {
        let mut stream = send(addr, method, path, body).await;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read reply");
        raw
    };
    let raw = tokio::time::timeout(Duration::from_secs(60), exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {path} hung for 60 s"));
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP reply");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let retry_after = lines.find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("retry-after")
            .then(|| v.trim().to_string())
    });
    Reply {
        status,
        retry_after,
        body: serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_string())),
        elapsed,
    }
}

async fn query(addr: SocketAddr, q: &str) -> Reply {
    http(addr, "POST", "/api/query", Some(&json!({ "query": q }))).await
}

/// A 503 that tells the client when to come back.
fn assert_unavailable(r: &Reply, what: &str) {
    assert_eq!(r.status, 503, "{what}: {r:?}");
    assert!(r.retry_after.is_some(), "{what}: no Retry-After: {r:?}");
}

/// A migrated database with a few traces and a built view, so `CHEAP` reads summaries.
async fn database_with_summaries() -> TestDb {
    let db = TestDb::migrated().await;
    support::seed(&db, 2_000, 1, 7).await;
    let mut client = db.client().await;
    let cfg = store::summaries::SummaryConfig {
        window: chrono::Duration::days(1),
        retention: chrono::Duration::days(7),
        refresh_interval: chrono::Duration::minutes(2),
    };
    store::summaries::ensure_view(&mut client, &cfg)
        .await
        .expect("build view");
    db
}

/// Holds an exclusive lock on `otel_traces` until dropped or released: every query over
/// spans waits in PostgreSQL, as a long aggregation would, while summaries stay readable.
struct SpanLock(tokio_postgres::Client);

impl SpanLock {
    async fn take(db: &TestDb) -> Self {
        let client = db.client().await;
        client
            .batch_execute("BEGIN; LOCK TABLE otel_traces IN ACCESS EXCLUSIVE MODE")
            .await
            .expect("lock otel_traces");
        SpanLock(client)
    }

    async fn release(self) {
        self.0.batch_execute("COMMIT").await.expect("unlock");
    }
}

/// Backends of the service waiting on a lock (our `SpanLock`).
async fn blocked_backends(db: &TestDb) -> i64 {
    let client = db.client().await;
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'srql'
               AND state = 'active' AND wait_event_type = 'Lock'",
            &[],
        )
        .await
        .expect("pg_stat_activity")
        .get(0)
}

async fn wait_for_blocked(db: &TestDb, want: i64) {
    let started = Instant::now();
    while blocked_backends(db).await != want {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "expected {want} blocked backends, have {}",
            blocked_backends(db).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn far_more_clients_than_connections_are_all_answered() {
    let db = database_with_summaries().await;
    // The setup: 16 connections and the catalog cached for one second, which used
    // to deadlock from 17 clients on (query connection held while re-reading the catalog).
    let svc = serve(&db.url, 16, ServiceConfig::default()).await;
    assert_eq!(query(svc.addr, CHEAP).await.status, 200);

    let until = Instant::now() + Duration::from_secs(4);
    let clients: Vec<_> = (0..64)
        .map(|_| {
            let addr = svc.addr;
            tokio::spawn(async move {
                let mut replies = Vec::new();
                while Instant::now() < until {
                    replies.push(query(addr, CHEAP).await);
                }
                replies
            })
        })
        .collect();
    // Probes keep answering within their bound while the clients run.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for path in ["/healthz", "/metrics"] {
        let r = http(svc.addr, "GET", path, None).await;
        assert!(r.status == 200 || r.status == 503, "{path}: {r:?}");
        assert!(
            r.elapsed < Duration::from_secs(2),
            "{path} took {:?}",
            r.elapsed
        );
    }
    let mut ok = 0;
    for c in clients {
        for r in c.await.expect("client task") {
            // Bounded: answered within the lane wait plus the query, never hanging.
            assert!(r.elapsed < Duration::from_secs(15), "{r:?}");
            match r.status {
                200 => ok += 1,
                _ => assert_unavailable(&r, "under load"),
            }
        }
    }
    assert!(ok >= 64, "only {ok} queries answered 200");
    // And the service is still healthy afterwards.
    assert_eq!(query(svc.addr, CHEAP).await.status, 200);
    assert_eq!(http(svc.addr, "GET", "/healthz", None).await.status, 200);
}

#[tokio::test]
async fn span_work_filling_its_lane_does_not_delay_summaries_or_probes() {
    let db = database_with_summaries().await;
    let config = ServiceConfig {
        on_the_fly_slots: 2,
        lane_wait: Duration::from_secs(1),
        ..ServiceConfig::default()
    };
    let svc = serve(&db.url, 16, config).await;
    assert_eq!(query(svc.addr, CHEAP).await.status, 200);

    let lock = SpanLock::take(&db).await;
    let slow: Vec<_> = (0..6)
        .map(|_| {
            let addr = svc.addr;
            tokio::spawn(async move { query(addr, SPANS).await })
        })
        .collect();
    // Both on-the-fly slots are stuck in PostgreSQL...
    wait_for_blocked(&db, 2).await;
    // ...and cheap reads and probes do not queue behind them.
    for _ in 0..5 {
        let r = query(svc.addr, CHEAP).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.elapsed < Duration::from_secs(2), "{r:?}");
    }
    let health = http(svc.addr, "GET", "/healthz", None).await;
    assert_eq!(health.status, 200, "{health:?}");
    // Its own bound is 0.9 s; the margin is for a loaded test machine.
    assert!(health.elapsed < Duration::from_millis(1500), "{health:?}");

    // The four that found the lane full were turned away after the lane wait.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    lock.release().await;
    let mut statuses = Vec::new();
    for s in slow {
        let r = s.await.expect("task");
        if r.status == 503 {
            assert_unavailable(&r, "full lane");
            assert!(r.body["error"]
                .as_str()
                .unwrap_or("")
                .contains("on_the_fly"));
        }
        statuses.push(r.status);
    }
    statuses.sort();
    assert_eq!(statuses, [200, 200, 503, 503, 503, 503]);
    let metrics = http(svc.addr, "GET", "/metrics", None).await;
    let text = metrics.body.as_str().unwrap_or("");
    assert!(
        text.contains("srql_query_errors_total{kind=\"unavailable\"} 4"),
        "{text}"
    );
}

#[tokio::test]
async fn a_query_past_the_statement_timeout_is_stopped_with_504() {
    let db = database_with_summaries().await;
    let config = ServiceConfig {
        query_timeout: Duration::from_secs(1),
        ..ServiceConfig::default()
    };
    let svc = serve(&db.url, 8, config).await;
    let lock = SpanLock::take(&db).await;
    let r = query(svc.addr, SPANS).await;
    assert_eq!(r.status, 504, "{r:?}");
    let msg = r.body["error"].as_str().unwrap_or("");
    assert!(msg.contains("statement timeout (1s)"), "{msg}");
    assert!(r.elapsed < Duration::from_secs(5), "{r:?}");
    // PostgreSQL stopped it: nothing of ours is still waiting.
    assert_eq!(blocked_backends(&db).await, 0);
    let metrics = http(svc.addr, "GET", "/metrics", None).await;
    let text = metrics.body.as_str().unwrap_or("");
    assert!(
        text.contains("srql_query_errors_total{kind=\"timeout\"} 1"),
        "{text}"
    );
    lock.release().await;
    assert_eq!(query(svc.addr, SPANS).await.status, 200);
}

#[tokio::test]
async fn a_client_that_goes_away_has_its_query_cancelled_in_postgres() {
    let db = database_with_summaries().await;
    let svc = serve(&db.url, 8, ServiceConfig::default()).await;
    let lock = SpanLock::take(&db).await;
    let stream = send(
        svc.addr,
        "POST",
        "/api/query",
        Some(&json!({ "query": SPANS })),
    )
    .await;
    wait_for_blocked(&db, 1).await;
    drop(stream);
    // Within a few seconds the backend no longer runs it, although the statement
    // timeout (30 s) is far away and the lock is still held.
    wait_for_blocked(&db, 0).await;
    lock.release().await;
    assert_eq!(query(svc.addr, SPANS).await.status, 200);
}

#[tokio::test]
async fn source_override_needs_the_setting() {
    let db = database_with_summaries().await;
    let svc = serve(&db.url, 8, ServiceConfig::default()).await;
    let ask = |source: &str| json!({ "query": CHEAP, "source": source });
    let r = http(svc.addr, "POST", "/api/query", Some(&ask("on_the_fly"))).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body["error"]
        .as_str()
        .unwrap_or("")
        .contains("--allow-source-override"));
    let r = http(svc.addr, "POST", "/translate", Some(&ask("summaries"))).await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = http(svc.addr, "POST", "/api/query", Some(&ask("auto"))).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = http(svc.addr, "POST", "/api/query", Some(&ask("fastest"))).await;
    assert_eq!(r.status, 400, "{r:?}");

    let allowed = ServiceConfig {
        allow_source_override: true,
        ..ServiceConfig::default()
    };
    let svc = serve(&db.url, 8, allowed).await;
    let r = http(svc.addr, "POST", "/api/query", Some(&ask("on_the_fly"))).await;
    assert_eq!(r.status, 200, "{r:?}");
}

/// Polls `CHEAP` until it answers 200; the service itself is never restarted.
async fn wait_until_served(addr: SocketAddr, within: Duration) {
    let started = Instant::now();
    loop {
        let r = query(addr, CHEAP).await;
        if r.status == 200 {
            return;
        }
        assert_unavailable(&r, "while recovering");
        assert!(started.elapsed() < within, "not recovered: {r:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_crashed_and_restarted_database() {
    let dir = std::env::temp_dir().join(format!("srql-reliability-{}", std::process::id()));
    let mut opts = EmbeddedOptions::new(&dir);
    opts.durable = false;
    opts.pg_cron = false;
    opts.remove_on_stop = true;
    let mut cluster = EmbeddedCluster::start(&opts).expect("start a private cluster");
    let url = cluster.url("postgres");
    let mut client = store::db::connect(&url).await.expect("connect");
    store::migrate::run(&mut client).await.expect("migrate");
    drop(client);
    // The default 30 s statement timeout: a frozen server must be noticed well before.
    let svc = serve(&url, 8, ServiceConfig::default()).await;
    assert_eq!(query(svc.addr, CHEAP).await.status, 200);

    // Frozen (SIGSTOP): connections stay open and nothing answers.
    cluster.freeze().expect("freeze");
    let health = http(svc.addr, "GET", "/healthz", None).await;
    assert_unavailable(&health, "healthz, frozen");
    assert!(health.elapsed < Duration::from_secs(2), "{health:?}");
    assert_eq!(health.body["status"], "unavailable");
    let metrics = http(svc.addr, "GET", "/metrics", None).await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.elapsed < Duration::from_secs(2), "{metrics:?}");
    // Once the cached catalog (1 s) is stale, requests wait for its re-read, which gives
    // up after 5 s; then they fail at once until a read succeeds again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = query(svc.addr, CHEAP).await;
    assert_unavailable(&r, "query, frozen");
    assert!(r.elapsed < Duration::from_secs(8), "{r:?}");
    let r = query(svc.addr, CHEAP).await;
    assert_unavailable(&r, "second query, frozen");
    assert!(r.elapsed < Duration::from_secs(8), "{r:?}");
    cluster.thaw().expect("thaw");
    wait_until_served(svc.addr, Duration::from_secs(15)).await;

    // Crashed: connections die and new ones are refused.
    cluster.crash().expect("crash");
    let r = query(svc.addr, CHEAP).await;
    assert_unavailable(&r, "query, crashed");
    assert!(r.elapsed < Duration::from_secs(8), "{r:?}");
    assert!(!r.body.to_string().contains("refused"), "{r:?}");
    let health = http(svc.addr, "GET", "/healthz", None).await;
    assert_unavailable(&health, "healthz, crashed");
    assert!(!health.body.to_string().contains("refused"), "{health:?}");

    cluster.start_again().expect("start again");
    wait_until_served(svc.addr, Duration::from_secs(30)).await;
    assert_eq!(http(svc.addr, "GET", "/healthz", None).await.status, 200);
    drop(cluster);
}
