//! `srql demo`: the embedded database with a modest generated data set, then the API.

use crate::args::{DbArgs, DemoArgs, ServeArgs, SummaryArgs};
use crate::database;

pub async fn demo(db: &DbArgs, summaries: &SummaryArgs, args: &DemoArgs) -> Result<(), String> {
    let db = database::open(db).await?;
    db.migrate(summaries).await?;
    let client = store::db::connect(&db.url)
        .await
        .map_err(|e| e.to_string())?;
    let have: i64 = client
        .query_one("SELECT count(*) FROM otel_traces", &[])
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    // Rerunning the demo reuses the data it loaded last time.
    if (have as u64) < args.spans / 2 && args.via_otlp {
        let report = load_via_otlp(&db.writer_url, args.spans).await?;
        println!(
            "loaded {} spans through OTLP/gRPC in {:.1} s ({:.0} spans/s)",
            report.spans,
            report.elapsed.as_secs_f64(),
            report.spans_per_sec()
        );
    } else if (have as u64) < args.spans / 2 {
        let report = srql_bench::load::with_progress(&db.writer_url, args.spans, 7, 1, 2).await?;
        println!(
            "loaded {} spans ({} traces) in {:.1} s ({:.0} spans/s)",
            report.spans,
            report.traces,
            report.elapsed.as_secs_f64(),
            report.spans_per_sec()
        );
    } else {
        println!("reusing {have} spans already loaded");
    }
    let done =
        crate::refresh::caught_up(&db.url, store::summaries::RefreshMethod::Concurrently).await?;
    println!(
        "summaries refreshed: {} traces in {:.2} s",
        done.rows, done.secs
    );
    if args.no_serve {
        for q in [
            "in:otel_trace_summaries time:last_24h sort:duration_ms:desc limit:5",
            "in:otel_trace_summaries time:last_1h root_service_name:svc-1 limit:5",
        ] {
            let catalog = store::summaries::catalog(&client)
                .await
                .map_err(|e| e.to_string())?;
            let plan = srql_plan::compile(
                q,
                &catalog,
                &srql_plan::PageRequest::default(),
                &srql_lang::Limits::default(),
                chrono::Utc::now(),
            )
            .map_err(|e| e.to_string())?;
            let started = std::time::Instant::now();
            let result = store::exec::run(&client, &plan)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "\n$ srql query '{q}'   # {} in {:.1} ms",
                plan.source.label(),
                started.elapsed().as_secs_f64() * 1000.0
            );
            print!("{}", crate::table::render(&result.results));
        }
        return Ok(());
    }
    let serve = ServeArgs {
        listen: args.listen.clone(),
        api_key: None,
        default_limit: srql_plan::PageLimits::default().default,
        max_limit: srql_plan::PageLimits::default().max,
        max_trace_limit: srql_plan::PageLimits::default().one_trace,
        limits: Default::default(),
        otlp: args.otlp.clone(),
        tls: Default::default(),
        seal_after: store::sealing::DEFAULT_SEAL_AFTER_TEXT.to_string(),
    };
    let banner = "\nsrql demo is serving on http://{addr}  (Ctrl-C stops it and the embedded PostgreSQL)\n\
        try:\n  curl -s http://{addr}/api/query -H 'content-type: application/json' \\\n    \
        -d '{\"query\": \"in:otel_trace_summaries time:last_24h sort:duration_ms:desc limit:5\"}'\n  \
        curl -s http://{addr}/healthz\n  curl -s http://{addr}/metrics\n\
        OTLP trace receivers: {otlp}"
        .to_string();
    crate::serve::serve_on(&db, &serve, None, Some(banner)).await
}

/// The demo feeding itself: its own OTLP/gRPC receiver on a spare port, the workload sent
/// through it, the receiver stopped once everything is stored.
async fn load_via_otlp(
    url: &str,
    spans: u64,
) -> Result<srql_bench::otlp_client::SendReport, String> {
    // Day partitions first, as the COPY loader does, so the spans land in place rather
    // than in the default partition until the next upkeep.
    let client = store::db::connect(url).await.map_err(|e| e.to_string())?;
    let now = chrono::Utc::now();
    store::partitions::ensure(
        &client,
        now - chrono::Duration::days(7),
        now + chrono::Duration::days(1),
    )
    .await
    .map_err(|e| e.to_string())?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let pool = store::db::pool(url, 3).map_err(|e| e.to_string())?;
    let options = otlp::Options {
        grpc_listen: Some("127.0.0.1:0".into()),
        http_listen: None,
        ..otlp::Options::default()
    };
    let receivers = otlp::start(pool, options, stop_rx)
        .await
        .map_err(|e| e.to_string())?;
    let endpoint = receivers
        .grpc_addr
        .map(|a| format!("http://{a}"))
        .ok_or("the OTLP/gRPC receiver did not start")?;
    let sent = crate::generate::via_otlp(&endpoint, spans, 7, 1).await;
    let _ = stop_tx.send(true);
    receivers.stopped().await;
    sent
}
