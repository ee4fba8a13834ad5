//! Every `ok` query of the shared corpus (`tests/queries/*.srql`, whose parse trees, plans
//! and SQL are snapshotted by `srql-lang` and `srql-plan`) run against PostgreSQL through
//! `/api/query` on both paths: pinned to the summaries and pinned to the on-the-fly
//! aggregation. Where the summaries can answer, both bodies must be equal; where they
//! cannot (a range before their window, a `trace_id` lookup), pinning them is a 400 and the
//! automatic choice must be the on-the-fly answer. Span and rollup queries read span rows
//! on both paths, so their bodies must be equal too.

mod support;

use std::path::{Path, PathBuf};

use axum::http::StatusCode;
use chrono::Duration;
use serde_json::json;
use store::summaries::{self, RefreshMethod, SummaryConfig};
use store::testing::TestDb;

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
    let config = SummaryConfig {
        window: Duration::days(7),
        retention: Duration::days(7),
        refresh_interval: Duration::minutes(2),
    };
    let mut client = db.client().await;
    summaries::ensure_view(&mut client, &config)
        .await
        .expect("build view");
    summaries::refresh(&client, RefreshMethod::Concurrently)
        .await
        .expect("refresh");
    let app = support::app(&db, None);

    let files = corpus();
    assert!(files.len() >= 30, "corpus not found: {files:?}");
    let (mut both, mut fallback, mut nonempty) = (0, 0, 0);
    for path in &files {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let text = std::fs::read_to_string(path).expect("corpus files are UTF-8");
        let q = text.trim_end_matches('\n');
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
