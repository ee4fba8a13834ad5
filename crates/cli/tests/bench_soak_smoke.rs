//! `srql bench-soak` at a tiny scale, end to end through the binary: a few clients for two
//! seconds with OTLP ingest, in each summary mode. Asserts what must hold whatever the
//! machine (every request accounted for, no error, no acknowledged span lost, the mode
//! asked for is the one the service ran in), never timings.

use std::process::Command;

use serde_json::Value;
use store::testing::TestDb;

const BEFORE: &str = "# Benchmarks\n\nFigures from other work.\n\n";
const AFTER: &str = "\n\n## Other work, after the section\n\nKept as it is.\n";
const SECONDS: u64 = 2;

#[tokio::test(flavor = "multi_thread")]
async fn soak_accounts_for_every_request_and_every_acknowledged_span() {
    // The benchmark makes its own database beside this one, on the test server; both
    // modes in one test, since the runs share that database's name.
    let db = TestDb::empty().await;
    soak(&db, None, "incremental").await;
    soak(&db, Some("materialized_view"), "materialized_view").await;
}

/// One run with `--summary-mode` set to `mode` (or left to its default), which must end
/// reporting the service's summaries in `expected` mode.
async fn soak(db: &TestDb, mode: Option<&str>, expected: &str) {
    let dir =
        std::env::temp_dir().join(format!("srql-soak-smoke-{expected}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let markdown = dir.join("BENCHMARKS.md");
    std::fs::write(
        &markdown,
        format!("{BEFORE}<!-- soak:start -->\nstale figures\n<!-- soak:end -->{AFTER}"),
    )
    .unwrap();
    let results = dir.join("results");

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_srql"));
    cmd.args(["bench-soak", "--spans", "5000", "--clients", "4"])
        .args(["--seconds", &SECONDS.to_string(), "--otlp-rate", "1000"])
        // Generous: this is about correctness, on a debug build on a shared machine.
        .args(["--timeout", "30", "--write-benchmarks"])
        .arg("--out-dir")
        .arg(&results)
        .arg("--markdown")
        .arg(&markdown)
        .env("DATABASE_URL", &db.url)
        .env("SRQL_LOG", "warn");
    if let Some(mode) = mode {
        cmd.args(["--summary-mode", mode]);
    }
    for var in [
        "SRQL_SUMMARY_WINDOW",
        "SRQL_RETENTION",
        "SRQL_SUMMARY_MODE",
        "SRQL_API_KEY",
    ] {
        cmd.env_remove(var);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("run srql bench-soak");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "srql bench-soak failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("acked spans lost: 0"), "{stdout}");
    assert!(
        stdout.contains(&format!("summaries: {expected}\n")),
        "{stdout}"
    );

    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(results.join("soak.json")).unwrap())
            .expect("soak.json is JSON");
    check_queries(&json);
    assert_eq!(json["settings"]["summary_mode"], expected);
    check_ingest(&json["ingest"]);
    let md = std::fs::read_to_string(&markdown).unwrap();
    check_markdown(&md);
    assert!(md.contains(&format!("({expected} mode)")), "{md}");
    let svg = std::fs::read_to_string(results.join("soak.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));

    let admin = store::db::connect(&TestDb::admin_url()).await.unwrap();
    let left: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = 'srql_bench_soak'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "the run's database is dropped afterwards");
    let _ = std::fs::remove_dir_all(&dir);
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn check_queries(json: &Value) {
    assert_eq!(json["settings"]["clients"], 4);
    assert_eq!(json["settings"]["scale"], "5000 spans");
    let spans = n(&json["load"]["spans"]);
    assert!((4_000..6_000).contains(&spans), "about 5000 spans: {spans}");
    let q = &json["queries"];
    let requests = n(&q["requests"]);
    assert!(requests > 0, "the clients were answered: {q}");
    assert_eq!(n(&q["errors"]), 0, "no request failed: {q}");
    assert_eq!(n(&q["ok"]) + n(&q["errors"]), requests);
    assert_eq!(
        n(&q["errors"]),
        n(&q["non_2xx"]) + n(&q["timeouts"]) + n(&q["transport"])
    );
    let kinds = q["kinds"].as_array().unwrap();
    assert_eq!(kinds.len(), 6, "one entry per request kind");
    assert_eq!(
        kinds.iter().map(|k| n(&k["requests"])).sum::<u64>(),
        requests,
        "the kinds add up to the whole"
    );
    let l = &q["latency"];
    assert_eq!(n(&l["runs"]), requests);
    let v = |k: &str| l[k].as_f64().unwrap();
    assert!(
        0.0 < v("p50_ms")
            && v("p50_ms") <= v("p90_ms")
            && v("p90_ms") <= v("p99_ms")
            && v("p99_ms") <= v("max_ms"),
        "{l}"
    );
    assert!(q["secs"].as_f64().unwrap() >= SECONDS as f64);
    let timeline = json["timeline"].as_array().unwrap();
    assert_eq!(timeline.len() as u64, SECONDS);
    assert_eq!(
        timeline.iter().map(|s| n(&s["requests"])).sum::<u64>(),
        requests
    );
}

fn check_ingest(i: &Value) {
    let acked = n(&i["acked_spans"]);
    assert!(acked > 0, "spans went in during the window: {i}");
    assert_eq!(n(&i["lost_spans"]), 0, "every acknowledged span is stored");
    assert_eq!(n(&i["failed_requests"]), 0, "{i}");
    assert_eq!(
        n(&i["acked_requests"]) + n(&i["failed_requests"]),
        n(&i["requests"])
    );
    assert!(acked <= n(&i["offered_spans"]), "{i}");
    assert_eq!(n(&i["target_spans_per_sec"]), 1000);
}

fn check_markdown(md: &str) {
    assert!(md.starts_with(BEFORE), "text before the section kept");
    assert!(md.ends_with(AFTER), "text after the section kept");
    assert_eq!(md.matches("<!-- soak:start -->").count(), 1);
    assert!(!md.contains("stale figures"));
    let section =
        &md[md.find("<!-- soak:start -->").unwrap()..md.find("<!-- soak:end -->").unwrap()];
    for header in [
        "| figure | value |",
        "| request | SRQL | share | requests | errors | p50 ms | p90 ms | p99 ms | max ms |",
    ] {
        assert!(section.contains(header), "missing table `{header}`");
    }
    for table in section.split("\n\n").filter(|b| b.starts_with('|')) {
        let cells = |line: &str| line.matches('|').count();
        let mut lines = table.lines();
        let width = cells(lines.next().unwrap());
        assert!(lines.all(|l| cells(l) == width), "ragged table:\n{table}");
    }
    assert!(section.contains("| acknowledged spans lost | 0 |"));
    assert!(
        section.contains("](results/soak.svg)"),
        "the plot is linked relatively"
    );
    assert!(section.contains("](results/soak.json)"));
}
