//! Every `ok` query of the one query corpus (`tests/queries/*.srql`, whose parse trees, plans
//! and SQL are snapshotted by `srql-lang` and `srql-plan`) run against PostgreSQL through
//! `/api/query` on both paths: pinned to the summaries and pinned to the on-the-fly
//! aggregation. Where the summaries can answer, both bodies must be equal; where they
//! cannot (a range before their window, a `trace_id` lookup), pinning them is a 400 and the
//! automatic choice must be the on-the-fly answer. Span and rollup queries read span rows
//! on both paths, so their bodies must be equal too.

mod support;

use std::path::{Path, PathBuf};

use axum::http::StatusCode;
use chrono::{Duration, NaiveDate, Utc};
use serde_json::json;
use store::testing::TestDb;

/// The "now" the corpus is written for (`srql-plan`'s snapshots plan against it): absolute
/// dates in the queries lie where they should relative to it.
fn corpus_today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 25).expect("a valid date")
}

/// Moves every `YYYY-MM-DD` in `query` by `days`, so a query written for the corpus's "now"
/// asks about the same part of the seeded data (which is laid out relative to the real
/// now) on whatever day the test runs, and an open range never outgrows the 90-day limit.
fn shift_dates(query: &str, days: i64) -> String {
    let bytes = query.as_bytes();
    let is_date = |at: usize| {
        bytes.len() >= at + 10
            && bytes[at..at + 10].iter().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    *b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            })
    };
    let mut out = String::with_capacity(query.len());
    let mut at = 0;
    while at < query.len() {
        if query.is_char_boundary(at) && is_date(at) {
            if let Ok(date) = NaiveDate::parse_from_str(&query[at..at + 10], "%Y-%m-%d") {
                out.push_str(&(date + Duration::days(days)).format("%Y-%m-%d").to_string());
                at += 10;
                continue;
            }
        }
        let ch = query[at..].chars().next().expect("inside the text");
        out.push(ch);
        at += ch.len_utf8();
    }
    out
}

#[test]
fn dates_move_and_everything_else_stays() {
    assert_eq!(
        shift_dates(
            "time:[2026-11-24T00:00:00Z,2026-11-25 06:00:00] name:é2026-13-01",
            7
        ),
        "time:[2026-12-01T00:00:00Z,2026-12-02 06:00:00] name:é2026-13-01"
    );
}

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/queries");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the corpus directory")
        .map(|e| e.expect("a corpus entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "srql"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn every_ok_query_of_the_corpus_answers_alike_on_both_paths() {
    let db = TestDb::migrated().await;
    support::seed(&db, 4_000, 7, 12).await;
    let app = support::app_over_view(&db).await;

    let files = corpus();
    assert!(files.len() >= 100, "corpus not found: {files:?}");
    let days = (Utc::now().date_naive() - corpus_today()).num_days();
    let (mut both, mut fallback, mut nonempty) = (0, 0, 0);
    for path in &files {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let text = std::fs::read_to_string(path).expect("corpus files are UTF-8");
        let q = &shift_dates(text.trim_end_matches('\n'), days);
        let live = support::query(&app, json!({ "query": q, "source": "on_the_fly" })).await;
        assert_eq!(live.status, StatusCode::OK, "{name}: {}", live.body);
        nonempty += usize::from(!live.results().is_empty());
        let view = support::query(&app, json!({ "query": q, "source": "summaries" })).await;
        if view.status == StatusCode::OK {
            assert_eq!(
                view.body, live.body,
                "{name}: summaries and on the fly differ"
            );
            both += 1;
        } else {
            assert_eq!(
                view.status,
                StatusCode::BAD_REQUEST,
                "{name}: {}",
                view.body
            );
            assert!(
                view.error().contains("summaries requested but unusable"),
                "{name}: {}",
                view.error()
            );
            let auto = support::query(&app, json!({ "query": q })).await;
            assert_eq!(auto.source(), "on_the_fly", "{name}");
            assert_eq!(auto.body, live.body, "{name}: the automatic choice differs");
            fallback += 1;
        }
    }
    // Most of the corpus must be answerable by the summaries, or the comparison proves
    // little; the fallbacks are the few before-window ranges and trace lookups.
    assert!(
        both >= 25,
        "{both} compared on both paths, {fallback} fell back"
    );
    assert!(nonempty >= 20, "only {nonempty} queries returned rows");
}
