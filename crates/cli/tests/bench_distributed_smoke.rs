//! `srql bench-distributed` end to end through the binary at a tiny size: it starts a real
//! Citus cluster (a coordinator and two workers) beside the test server, measures both
//! sides, writes its results and its BENCHMARKS.md section, and leaves no node or
//! database behind. Timings are never asserted; they depend on the machine.

use std::process::Command;

use serde_json::Value;
use store::testing::TestDb;

const BEFORE: &str = "# Benchmarks\n\nFigures from other work.\n\n";
const AFTER: &str = "\n\n## Other work, after the section\n\nKept as it is.\n";

#[tokio::test(flavor = "multi_thread")]
async fn bench_distributed_measures_both_sides_and_cleans_up() {
    store::citus_local::check_installed().unwrap_or_else(|e| panic!("{e}"));
    // The single-node side makes its databases beside this one, on the test server.
    let db = TestDb::empty().await;
    let dir = std::env::temp_dir().join(format!("srql-bench-dist-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let citus_dir = dir.join("citus");
    std::fs::create_dir_all(&citus_dir).unwrap();
    let markdown = dir.join("BENCHMARKS.md");
    std::fs::write(
        &markdown,
        format!("{BEFORE}<!-- distributed:start -->\nstale\n<!-- distributed:end -->{AFTER}"),
    )
    .unwrap();
    let json_path = dir.join("distributed.json");

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_srql"));
    cmd.args(["bench-distributed", "--scales", "s", "--spans", "4000"])
        .args(["--otlp-spans", "1500", "--summary-runs", "1"])
        .args([
            "--on-the-fly-runs",
            "1",
            "--new-spans",
            "300",
            "--repeats",
            "1",
        ])
        .args(["--rates", "200", "--ingest-secs", "3"])
        .args(["--note", "smoke test"])
        .arg("--citus-dir")
        .arg(&citus_dir)
        .arg("--out")
        .arg(&json_path)
        .arg("--markdown")
        .arg(&markdown)
        .env("DATABASE_URL", &db.url)
        .env("SRQL_LOG", "warn");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("run srql bench-distributed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "srql bench-distributed failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Citus cluster stopped and removed"),
        "{stdout}"
    );

    let json: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap())
        .expect("distributed.json is JSON");
    let scales = json["scales"].as_array().unwrap();
    assert_eq!(scales.len(), 1);
    let s = &scales[0];
    assert_eq!(s["scale"], "S");
    assert_eq!(s["workers"], 2);
    for side in ["single", "citus"] {
        let r = &s[side];
        assert_eq!(r["side"], side);
        assert_eq!(r["load"]["spans"], s["single"]["load"]["spans"], "{side}");
        assert!(r["otlp"]["spans"].as_u64().unwrap() >= 1500, "{side}");
        assert!(r["backlog_drain"]["traces"].as_i64().unwrap() > 0, "{side}");
        let pages = r["first_pages"].as_array().unwrap();
        assert!(!pages.is_empty(), "{side}");
        assert!(
            pages.iter().all(|p| p["summaries"]["p50_ms"].is_number()),
            "{side}: every first page measured"
        );
        assert_eq!(r["cycles"][0]["new_spans"], 300, "{side}");
        assert_eq!(r["lag"][0]["exact"], true, "{side}");
        assert_eq!(r["lag"][0]["lost"], 0, "{side}");
    }
    // The Citus side's CPU is read from its own nodes.
    assert!(s["citus"]["load"]["cpu"]["workers_secs"].as_f64().unwrap() > 0.0);

    let md = std::fs::read_to_string(&markdown).unwrap();
    assert!(md.starts_with(BEFORE) && md.ends_with(AFTER), "{md}");
    assert!(!md.contains("stale"));
    assert!(md.contains("## Distributed (Citus)") && md.contains("smoke test"));

    assert_eq!(
        std::fs::read_dir(&citus_dir).unwrap().count(),
        0,
        "the Citus nodes' data is removed"
    );
    let admin = store::db::connect(&TestDb::admin_url()).await.unwrap();
    let left: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'srql_bench_dist%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "the single-node side's databases are dropped");
    let _ = std::fs::remove_dir_all(&dir);
}
