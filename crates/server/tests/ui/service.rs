//! The service the browser talks to: the real HTTP server (`server::run`, as `srql serve`
//! runs it) on a loopback port, over generated spans plus a few hand-made traces.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use server::{AppState, ServiceConfig};
use store::summaries::{self, SummaryConfig};
use store::testing::TestDb;
use tokio::sync::watch;
use workload::{Span, SpanResource, SpanRow, SpanScope};

use crate::support;

/// A root span name that would run script if the page ever treated names as HTML.
pub const HOSTILE_NAME: &str = "<img src=x onerror=alert(1)>";
pub const HOSTILE_TRACE: &str = "0000000000000000000000000000a11e";
pub const BIG_TRACE: &str = "00000000000000000000000000000b19";
pub const BIG_SPANS: usize = 10_000;
/// A trace with one span whose sender's clock was not set (start a microsecond after the
/// epoch): its summary's duration is decades long.
pub const CLOCKLESS_TRACE: &str = "00000000000000000000000000c10c00";
/// From `support::edge_traces`: two spans whose parent (the root) never arrived.
pub const ROOTLESS_TRACE: &str = "edge000000000000000000000noroot";

pub struct Service {
    pub db: TestDb,
    pub base: String,
    shutdown: watch::Sender<bool>,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

fn span(trace: &str, id: String, parent: String, at: DateTime<Utc>, ms: i64) -> Span {
    let start = at.timestamp_nanos_opt().unwrap_or(0);
    let row = SpanRow {
        timestamp: at,
        trace_id: trace.to_string(),
        span_id: id,
        parent_span_id: parent,
        name: "work".into(),
        kind: 1,
        start_time_unix_nano: start,
        end_time_unix_nano: start + ms * 1_000_000,
        resource: std::sync::Arc::new(SpanResource {
            service_name: Some("svc-ui".into()),
            service_version: Some("1.0.0".into()),
            service_instance: Some("i-1".into()),
            attributes: "{}".into(),
        }),
        scope: std::sync::Arc::new(SpanScope {
            name: "ui-test".into(),
            version: "1".into(),
        }),
        status_code: 1,
        status_message: String::new(),
        attributes: "{}".into(),
        events: "[]".into(),
        links: "[]".into(),
    };
    Span {
        row,
        arrival_delay_ms: 0,
    }
}

/// A root whose name and attributes are markup, and one child.
fn hostile_trace(now: DateTime<Utc>) -> Vec<Span> {
    let at = now - Duration::minutes(20);
    let mut root = span(
        HOSTILE_TRACE,
        "a11e000000000001".into(),
        String::new(),
        at,
        40,
    );
    root.name = HOSTILE_NAME.into();
    root.kind = 2;
    root.attributes = json!({ "note": "<script>window.pwned = 1</script>" }).to_string();
    let child = span(
        HOSTILE_TRACE,
        "a11e000000000002".into(),
        "a11e000000000001".into(),
        at + Duration::milliseconds(5),
        10,
    );
    vec![root, child]
}

fn clockless_trace(now: DateTime<Utc>) -> Vec<Span> {
    let at = now - Duration::minutes(25);
    let id = |n: u8| format!("c10c0000000000{n:02x}");
    let root = span(CLOCKLESS_TRACE, id(1), String::new(), at, 30);
    let fine = span(
        CLOCKLESS_TRACE,
        id(2),
        id(1),
        at + Duration::milliseconds(5),
        10,
    );
    let mut unset = span(
        CLOCKLESS_TRACE,
        id(3),
        id(1),
        at + Duration::milliseconds(8),
        0,
    );
    unset.start_time_unix_nano = 1_000;
    unset.end_time_unix_nano = 2_000;
    vec![root, fine, unset]
}

/// [`start_in`] the summary mode a new database gets, as `srql serve` makes it.
pub async fn start(api_key: Option<&str>) -> Service {
    start_in(api_key, store::settings::NEW_DATABASE_MODE).await
}

/// Generated spans over the last day, the hand-made traces, the summaries built in `mode`,
/// and the server listening. With `api_key`, the API asks for it as `SRQL_API_KEY` makes
/// it.
pub async fn start_in(api_key: Option<&str>, mode: summaries::SummaryMode) -> Service {
    let db = TestDb::migrated().await;
    let now = Utc::now();
    support::seed(&db, 3_000, 1, 15).await;
    support::insert(&db, &hostile_trace(now)).await;
    support::insert(&db, &clockless_trace(now)).await;
    support::insert(
        &db,
        &srql_bench::wide_trace::wide_trace(BIG_TRACE, BIG_SPANS, now - Duration::minutes(30)),
    )
    .await;
    let mut client = db.client().await;
    let config = SummaryConfig {
        window: Duration::days(7),
        retention: Duration::days(7),
        refresh_interval: Duration::minutes(2),
    };
    let maintenance = summaries::Maintenance {
        mode,
        ..summaries::Maintenance::default()
    };
    summaries::ensure(&mut client, &config, &maintenance, &mut |_| {})
        .await
        .expect("build the summaries");

    let pool = store::db::pool(&db.reader_url(), 8).expect("pool");
    let state = AppState::new(
        pool,
        ServiceConfig {
            api_key: api_key.map(str::to_string),
            ..ServiceConfig::default()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let (shutdown, rx) = watch::channel(false);
    tokio::spawn(server::run(listener, state, rx));
    Service { db, base, shutdown }
}
