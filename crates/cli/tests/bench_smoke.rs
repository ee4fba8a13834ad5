//! `srql bench` at scale S, end to end through the binary, with few runs: the wiring and
//! the output formats. Timings are never asserted; they depend on the machine.

use std::process::Command;

use serde_json::Value;
use store::testing::TestDb;

const OTHER_WORK_BEFORE: &str = "# Benchmarks\n\nFigures from other work.\n\n";
const OTHER_WORK_AFTER: &str = "\n\n## Other work, after the section\n\nKept as it is.\n";

#[tokio::test(flavor = "multi_thread")]
async fn bench_at_s_writes_results_markdown_and_plot() {
    // The bench makes its own database beside this one, on the test server.
    let db = TestDb::empty().await;
    let dir = std::env::temp_dir().join(format!("srql-bench-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let markdown = dir.join("BENCHMARKS.md");
    std::fs::write(
        &markdown,
        format!("{OTHER_WORK_BEFORE}<!-- bench:start -->\nstale figures\n<!-- bench:end -->{OTHER_WORK_AFTER}"),
    )
    .unwrap();
    let results = dir.join("results");

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_srql"));
    // View mode: its refresh phase is what this checks; `cli.rs` runs both modes.
    cmd.args(["--summary-mode", "materialized_view"])
        .args(["bench", "--scales", "s", "--summary-runs", "3"])
        .args(["--on-the-fly-runs", "1", "--on-the-fly-min-runs", "1"])
        .args(["--on-the-fly-target-runs", "2"])
        .args(["--on-the-fly-budget", "0", "--timeout", "60"])
        .arg("--out-dir")
        .arg(&results)
        .arg("--markdown")
        .arg(&markdown)
        .env("DATABASE_URL", &db.url)
        .env("SRQL_LOG", "warn");
    for var in ["SRQL_SUMMARY_WINDOW", "SRQL_RETENTION", "SRQL_SUMMARY_MODE"] {
        cmd.env_remove(var);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("run srql bench");
    assert!(
        out.status.success(),
        "srql bench failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("total time"));

    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(results.join("bench.json")).unwrap())
            .expect("bench.json is JSON");
    check_results(&json);
    check_markdown(&std::fs::read_to_string(&markdown).unwrap());
    let svg = std::fs::read_to_string(results.join("latency.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<polyline").count(), 2, "one line per path");

    let admin = store::db::connect(&TestDb::admin_url()).await.unwrap();
    let left: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'srql_bench%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "the scale point's database is dropped afterwards");
    let _ = std::fs::remove_dir_all(&dir);
}

fn check_results(json: &Value) {
    assert_eq!(json["complete"], true);
    assert!(json["machine"]["cpus"].as_u64().unwrap() >= 1);
    let scales = json["scales"].as_array().unwrap();
    assert_eq!(scales.len(), 1);
    let s = &scales[0];
    assert_eq!(s["scale"], "S");
    let spans = s["load"]["spans"].as_u64().unwrap();
    assert!(
        (95_000..105_000).contains(&spans),
        "S is about 100k spans: {spans}"
    );
    assert_eq!(
        s["storage"]["spans"].as_u64(),
        Some(spans),
        "every span stored"
    );
    for key in [
        "spans_table_bytes",
        "spans_index_bytes",
        "summaries_table_bytes",
        "summaries_index_bytes",
    ] {
        assert!(s["storage"][key].as_i64().unwrap() > 0, "{key}");
    }

    let queries = s["queries"].as_array().unwrap();
    let names: Vec<&str> = queries
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "ui_open",
            "last_1h",
            "last_24h",
            "last_7d",
            "root_service",
            "service",
            "slowest",
            "errors",
            "page_100",
            "service_list",
            "span_attr_rare",
            "span_attr_common",
            "span_operation",
            "span_service_slow"
        ]
    );
    for q in queries {
        let name = q["name"].as_str().unwrap();
        let summaries = &q["summaries"];
        assert_eq!(summaries["status"], "measured", "{name}: {summaries}");
        assert_eq!(summaries["runs"], 3, "{name}");
        check_percentiles(name, summaries);
        let fly = &q["on_the_fly"];
        assert_eq!(fly["status"], "measured", "{name}: {fly}");
        let runs = if name == "last_24h" { 2 } else { 1 };
        assert_eq!(
            fly["runs"], runs,
            "{name}: the target's query gets more runs"
        );
        check_percentiles(name, fly);
        assert!(q["speedup_p50"].as_f64().unwrap() > 0.0, "{name}");
    }
    assert_eq!(queries[8]["page"], 100);

    let refresh = &s["refresh"];
    assert!(refresh["plain_secs"].as_f64().unwrap() > 0.0);
    assert!(refresh["concurrent_secs"].as_f64().unwrap() > 0.0);
    let rows = refresh["rows"].as_u64().unwrap();
    assert!(
        rows > 0 && rows <= s["load"]["traces"].as_u64().unwrap(),
        "summary rows {rows}"
    );
    assert_eq!(refresh["idle_reads"]["runs"], 3);
    assert!(refresh["reads_during_concurrent"]["runs"].as_u64().unwrap() >= 1);

    assert!(
        s["other_cpu_share"].is_null(),
        "not measurable on a server that is not the embedded cluster"
    );

    let targets = json["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 6);
    assert!(
        targets.iter().all(|t| t["met"].is_null()),
        "targets are about L, which this run did not measure"
    );
}

fn check_percentiles(name: &str, m: &Value) {
    let v = |k: &str| m[k].as_f64().unwrap();
    assert!(
        0.0 < v("p50_ms")
            && v("p50_ms") <= v("p95_ms")
            && v("p95_ms") <= v("p99_ms")
            && v("p99_ms") <= v("max_ms"),
        "{name}: {m}"
    );
}

fn check_markdown(md: &str) {
    assert!(
        md.starts_with(OTHER_WORK_BEFORE),
        "text before the section kept"
    );
    assert!(
        md.ends_with(OTHER_WORK_AFTER),
        "text after the section kept"
    );
    assert_eq!(md.matches("<!-- bench:start -->").count(), 1);
    assert_eq!(md.matches("<!-- bench:end -->").count(), 1);
    assert!(!md.contains("stale figures"));
    let section =
        &md[md.find("<!-- bench:start -->").unwrap()..md.find("<!-- bench:end -->").unwrap()];
    for header in [
        "| target | measured | met |",
        "| query | scale | summaries | on the fly | speed-up (p50) |",
        "| scale | summary rows | plain refresh | CONCURRENTLY | reads, idle | reads during CONCURRENTLY |",
    ] {
        assert!(section.contains(header), "missing table `{header}`");
    }
    // Every table row has as many cells as its header.
    for table in section.split("\n\n").filter(|b| b.starts_with('|')) {
        let cells = |line: &str| line.matches('|').count();
        let mut lines = table.lines();
        let width = cells(lines.next().unwrap());
        assert!(lines.all(|l| cells(l) == width), "ragged table:\n{table}");
    }
    let query_rows = section.lines().filter(|l| l.contains(" | S | ")).count();
    assert_eq!(query_rows, 14, "a latency row per query");
    let scale_rows = section.lines().filter(|l| l.starts_with("| S |")).count();
    assert_eq!(scale_rows, 2, "a refresh row and a load row");
    assert!(
        section.contains("](results/latency.svg)"),
        "the plot is linked relatively"
    );
    assert!(section.contains("](results/bench.json)"));
}
