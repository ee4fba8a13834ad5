//! `srql bench-sealing` on a few spans, end to end through the binary, in each summary
//! mode: it measures the mode it is given (the flag is global, and the benchmark used to
//! switch to incremental whatever it said). Never asserts timings.

use std::process::Command;

use store::testing::TestDb;

#[tokio::test(flavor = "multi_thread")]
async fn bench_sealing_measures_the_summary_mode_it_is_given() {
    // The benchmark makes its own database beside this one, on the test server; both
    // modes in one test, since the runs share that database's name.
    let db = TestDb::empty().await;

    let view = bench_sealing(&db, "materialized_view").await;
    assert!(
        view.contains("summaries: materialized_view mode; lookups by id search every day"),
        "{view}"
    );
    // No drain in that mode: its column is empty on both sides.
    for side in ["heap", "sealed"] {
        let row = table_row(&view, side);
        assert_eq!(cell(row, 9), "-", "{row}");
    }

    let incremental = bench_sealing(&db, "incremental").await;
    assert!(
        incremental.contains("summaries: incremental mode; lookups by id bounded"),
        "{incremental}"
    );
    for side in ["heap", "sealed"] {
        let row = table_row(&incremental, side);
        let drain: f64 = cell(row, 9)
            .parse()
            .unwrap_or_else(|_| panic!("a drain read time: {row}"));
        assert!(drain > 0.0, "{row}");
    }

    let admin = store::db::connect(&TestDb::admin_url()).await.unwrap();
    let left: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = 'srql_bench_sealing'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "the run's database is dropped afterwards");
}

async fn bench_sealing(db: &TestDb, mode: &str) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_srql"));
    cmd.args(["bench-sealing", "--spans", "20000", "--lookups", "10"])
        .args(["--on-the-fly-runs", "1", "--summary-mode", mode])
        .env("DATABASE_URL", &db.url)
        .env("SRQL_LOG", "warn");
    for var in ["SRQL_SUMMARY_WINDOW", "SRQL_RETENTION", "SRQL_SUMMARY_MODE"] {
        cmd.env_remove(var);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("run srql bench-sealing");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "srql bench-sealing --summary-mode {mode} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The results table's row for one side (heap, or sealed).
fn table_row<'a>(stdout: &'a str, side: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with('|') && cell(l, 3) == side)
        .unwrap_or_else(|| panic!("no {side} row:\n{stdout}"))
}

fn cell(row: &str, i: usize) -> &str {
    row.split('|').nth(i + 1).unwrap_or("").trim()
}
