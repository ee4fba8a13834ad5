//! Every `ok` query of the corpus (`tests/queries/*.srql`) gives the same rows and
//! cursors on Citus as on a single node holding the same spans: first pages merged from
//! per-shard top-N, trace lookups, stats and rollups, on the summaries and on the fly;
//! then the next page of each through its cursor.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use srql_bench::spans::{copy_spans, Arrival};
use srql_plan::{PageRequest, SourcePreference};
use store::distributed::Distribution;
use store::distributed_testing::CitusTestDb;
use store::summaries::{Maintenance, RefreshMethod, RunOutcome, SummaryConfig, SummaryMode};
use store::testing::TestDb;
use tokio_postgres::Client;
use workload::{Generator, WorkloadConfig};

fn config() -> SummaryConfig {
    SummaryConfig {
        window: Duration::days(7),
        retention: Duration::days(7),
        refresh_interval: Duration::minutes(2),
    }
}

fn incremental() -> Maintenance {
    Maintenance {
        mode: SummaryMode::Incremental,
        drain_interval: Duration::seconds(1),
    }
}

/// The corpus is written for this day (tests/queries/README.md); its dates move by the
/// days between it and today, as the data is laid out relative to the real clock.
fn corpus_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 25).expect("a valid date")
}

/// `query` with every `YYYY-MM-DD` moved by `days`.
fn move_dates(query: &str, days: i64) -> String {
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    while !rest.is_empty() {
        let date = rest
            .get(..10)
            .filter(|s| s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-')
            .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok());
        if let Some(d) = date {
            out.push_str(&(d + Duration::days(days)).format("%Y-%m-%d").to_string());
            rest = &rest[10..];
        } else {
            let ch = rest.chars().next().expect("not empty");
            out.push(ch);
            rest = &rest[ch.len_utf8()..];
        }
    }
    out
}

#[test]
fn dates_move_and_nothing_else() {
    assert_eq!(
        move_dates("time:[2026-11-24T00:00:00Z,2026-11-25] é2026-13-01", 7),
        "time:[2026-12-01T00:00:00Z,2026-12-02] é2026-13-01"
    );
}

fn corpus() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/queries");
    let days = (Utc::now().date_naive() - corpus_day()).num_days();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the corpus directory")
        .map(|e| e.expect("a corpus entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "srql"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).expect("corpus files are UTF-8");
            (
                p.file_name().unwrap_or_default().to_string_lossy().into(),
                move_dates(text.trim_end_matches('\n'), days),
            )
        })
        .collect()
}

/// Rows and cursors of one query (or the error, which must match too).
async fn answer(
    client: &Client,
    query: &str,
    cursor: Option<&str>,
    source: SourcePreference,
    now: DateTime<Utc>,
) -> Answer {
    let catalog = store::summaries::catalog(client)
        .await
        .map_err(|e| e.to_string())?;
    let page = PageRequest {
        limit: Some(7),
        cursor,
        ..Default::default()
    };
    let plan = srql_plan::compile(query, &catalog, &page, &srql_lang::Limits::default(), now)
        .and_then(|plan| plan.pin_source(source))
        .map_err(|e| format!("compile: {e}"))?;
    let result = store::exec::run(client, &plan)
        .await
        .map_err(|e| format!("run: {e}"))?;
    Ok((result.results, result.pagination.next_cursor))
}

/// Equal, except that floats may differ in their last digits: an average summed shard by
/// shard adds in another order than one summed on one node.
fn alike(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| alike(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| alike(v, w)))
        }
        _ => a == b,
    }
}

type Answer = Result<(Vec<serde_json::Value>, Option<String>), String>;

fn same_answer(got: &Answer, want: &Answer) -> bool {
    match (got, want) {
        (Ok((rows, next)), Ok((want_rows, want_next))) => {
            next == want_next
                && rows.len() == want_rows.len()
                && rows.iter().zip(want_rows).all(|(r, w)| alike(r, w))
        }
        _ => got == want,
    }
}

async fn drained(client: &Client) {
    let run = store::summaries::refresh(client, RefreshMethod::Concurrently)
        .await
        .expect("drain");
    assert_eq!(run.outcome, RunOutcome::Ok, "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_query_answers_alike_on_citus_and_on_one_node() {
    let now = Utc::now();
    let spans: Vec<_> = Generator::new(WorkloadConfig::new(
        23,
        1_500,
        now - Duration::days(6),
        now - Duration::minutes(1),
    ))
    .flat_map(|t| t.spans)
    .collect();

    let single = TestDb::empty().await;
    store::setup::run_with(&single.url, &config(), &incremental(), false, &mut |_| {})
        .await
        .expect("single-node migrate");
    let citus = CitusTestDb::empty().await;
    store::setup::run_distributed(
        &citus.url,
        &config(),
        &incremental(),
        false,
        &mut |_| {},
        Some(Distribution::Citus),
    )
    .await
    .expect("distributed migrate");
    for url in [single.writer_url(), citus.writer_url()] {
        let writer = store::db::connect(&url).await.expect("writer login");
        copy_spans(&writer, &spans, Arrival::At(now))
            .await
            .expect("load spans");
    }
    drained(&single.client().await).await;
    drained(&citus.client().await).await;

    let one = store::db::connect(&single.reader_url())
        .await
        .expect("reader login");
    let many = store::db::connect(&citus.reader_url())
        .await
        .expect("reader login on the coordinator");
    let queries = corpus();
    assert!(queries.len() >= 100, "corpus not found");
    let (mut compared, mut with_rows, mut next_pages) = (0, 0, 0);
    for (name, query) in &queries {
        for source in [SourcePreference::Auto, SourcePreference::OnTheFly] {
            let want = answer(&one, query, None, source, now).await;
            let got = answer(&many, query, None, source, now).await;
            assert!(
                same_answer(&got, &want),
                "{name} ({source:?}): Citus differs from one node:\n{got:?}\n{want:?}"
            );
            compared += 1;
            let Ok((rows, Some(cursor))) = want else {
                continue;
            };
            with_rows += usize::from(!rows.is_empty());
            let want = answer(&one, query, Some(&cursor), source, now).await;
            let got = answer(&many, query, Some(&cursor), source, now).await;
            assert!(
                same_answer(&got, &want),
                "{name} ({source:?}): next page differs:\n{got:?}\n{want:?}"
            );
            next_pages += 1;
        }
    }
    assert!(compared >= 200, "{compared} answers compared");
    assert!(with_rows >= 20, "only {with_rows} first pages had rows");
    assert!(next_pages >= 20, "only {next_pages} next pages followed");
}
