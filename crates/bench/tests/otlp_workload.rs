//! The generated workload through OTLP (`srql generate --via-otlp`, the benchmark):
//! every span comes back column for column as the COPY loader would have written it.

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use otlp::{IngestConfig, Options};
use serde_json::Value;
use store::testing::TestDb;
use tokio::sync::watch;
use workload::{Generator, WorkloadConfig};

/// The receivers on an ephemeral gRPC port over a fresh migrated database.
struct Harness {
    db: TestDb,
    grpc: std::net::SocketAddr,
    receivers: Option<otlp::Receivers>,
    stop: watch::Sender<bool>,
}

impl Harness {
    async fn start(ingest: IngestConfig) -> Harness {
        let db = TestDb::migrated().await;
        let pool = store::db::pool(&db.url, ingest.writers + 1).expect("pool");
        let (stop, stop_rx) = watch::channel(false);
        let options = Options {
            grpc_listen: Some("127.0.0.1:0".into()),
            http_listen: None,
            ingest,
            ..Options::default()
        };
        let receivers = otlp::start(pool, options, stop_rx)
            .await
            .expect("receivers start");
        Harness {
            db,
            grpc: receivers.grpc_addr.expect("grpc address"),
            receivers: Some(receivers),
            stop,
        }
    }

    async fn sql(&self) -> tokio_postgres::Client {
        self.db.client().await
    }

    /// Signals shutdown and waits until the queue is drained.
    async fn stop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(r) = self.receivers.take() {
            r.stopped().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_workload_round_trips_through_grpc() {
    let mut h = Harness::start(IngestConfig::default()).await;
    let end = Utc::now();
    let config = WorkloadConfig::for_spans(7, 3_000, end - Duration::days(2), end);
    let expected: Vec<workload::Span> = Generator::new(config).flat_map(|t| t.spans).collect();

    let report =
        srql_bench::otlp_client::send_workload(&format!("http://{}", h.grpc), config, 3, |_| {})
            .await
            .expect("sent");
    assert_eq!(report.spans, expected.len() as u64);
    assert_eq!(
        report.requests,
        expected
            .len()
            .div_ceil(srql_bench::otlp_client::BATCH_SPANS) as u64
    );

    let rows = h
        .sql()
        .await
        .query(
            "SELECT trace_id, span_id, parent_span_id, name, kind, start_time_unix_nano,
                    end_time_unix_nano, service_name, service_version, service_instance,
                    scope_name, scope_version, status_code, status_message, attributes,
                    resource_attributes, events, links, timestamp
             FROM srql_spans",
            &[],
        )
        .await
        .expect("rows");
    assert_eq!(rows.len(), expected.len());
    let by_id: BTreeMap<(String, String), &tokio_postgres::Row> =
        rows.iter().map(|r| ((r.get(0), r.get(1)), r)).collect();
    for s in &expected {
        let r = by_id
            .get(&(s.trace_id.clone(), s.span_id.clone()))
            .unwrap_or_else(|| panic!("span {} {} stored", s.trace_id, s.span_id));
        assert_eq!(r.get::<_, String>(2), s.parent_span_id);
        assert_eq!(r.get::<_, String>(3), s.name);
        assert_eq!(r.get::<_, i32>(4), s.kind);
        assert_eq!(r.get::<_, i64>(5), s.start_time_unix_nano);
        assert_eq!(r.get::<_, i64>(6), s.end_time_unix_nano);
        assert_eq!(
            r.get::<_, Option<String>>(7).as_deref(),
            Some(s.resource.service_name.as_deref().expect("a service"))
        );
        assert_eq!(
            r.get::<_, Option<String>>(8).as_deref(),
            Some(s.resource.service_version.as_deref().expect("a version"))
        );
        assert_eq!(
            r.get::<_, Option<String>>(9).as_deref(),
            Some(s.resource.service_instance.as_deref().expect("an instance"))
        );
        assert_eq!(r.get::<_, String>(10), s.scope.name);
        assert_eq!(r.get::<_, String>(11), s.scope.version);
        assert_eq!(r.get::<_, i32>(12), s.status_code);
        assert_eq!(r.get::<_, String>(13), s.status_message);
        let json = |text: &str| serde_json::from_str::<Value>(text).expect("workload JSON");
        assert_eq!(r.get::<_, Value>(14), json(&s.attributes));
        let mut resource = json(&s.resource.attributes);
        // The one addition: the instance travels as service.instance.id, as OTel has it.
        resource["service.instance.id"] = serde_json::json!(s.resource.service_instance);
        assert_eq!(r.get::<_, Value>(15), resource);
        // Events without attributes come back with an empty attributes object.
        let mut events = json(&s.events);
        for e in events.as_array_mut().expect("array") {
            e.as_object_mut()
                .expect("object")
                .entry("attributes")
                .or_insert(serde_json::json!({}));
        }
        assert_eq!(r.get::<_, Value>(16), events);
        assert_eq!(r.get::<_, Value>(17), json(&s.links));
        assert_eq!(
            r.get::<_, chrono::DateTime<Utc>>(18).timestamp_micros(),
            s.timestamp.timestamp_micros()
        );
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_stores_every_span_it_sends() {
    let db = store::testing::TestDb::empty().await;
    let report = srql_bench::otlp_ingest::run(
        &db.url,
        &srql_bench::otlp_ingest::BenchOptions {
            spans: 3_000,
            clients: 3,
            writers: 2,
            seed: 1,
        },
    )
    .await
    .expect("benchmark runs");
    assert_eq!(report.rows, report.spans as i64);
    assert_eq!(report.stats.spans, report.spans);
    assert!(report.spans > 2_500, "{report:?}");
}
