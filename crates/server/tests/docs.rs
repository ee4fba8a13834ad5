//! Every example in docs/srql.md runs: each line of a ```srql block must answer 200
//! against PostgreSQL through the HTTP API, each line of a ```srql-error block 400 with a
//! message. The reference cannot drift from what the service accepts.

mod support;

use axum::http::StatusCode;
use serde_json::json;
use store::testing::TestDb;

/// (query, must succeed) for every example line, in document order.
fn examples(markdown: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut block: Option<bool> = None;
    for line in markdown.lines() {
        let trimmed = line.trim();
        match (block, trimmed) {
            (None, "```srql") => block = Some(true),
            (None, "```srql-error") => block = Some(false),
            (Some(_), "```") => block = None,
            (Some(ok), query) if !query.is_empty() => out.push((query.to_string(), ok)),
            _ => {}
        }
    }
    assert!(block.is_none(), "unclosed code block in docs/srql.md");
    out
}

#[tokio::test]
async fn every_example_in_the_reference_answers_as_documented() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/srql.md");
    let markdown = std::fs::read_to_string(path).expect("docs/srql.md");
    let examples = examples(&markdown);
    assert!(
        examples.iter().filter(|(_, ok)| *ok).count() >= 20,
        "the reference has examples"
    );
    assert!(examples.iter().any(|(_, ok)| !*ok));

    let db = TestDb::migrated().await;
    support::seed(&db, 300, 1, 9).await;
    let app = support::app(&db, None);
    let mut wrong = Vec::new();
    for (query, ok) in &examples {
        let r = support::query(&app, json!({ "query": query })).await;
        let want = if *ok {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        if r.status != want || (!ok && r.error().is_empty()) {
            wrong.push(format!("{query}\n  -> {} {}", r.status, r.body));
        }
    }
    assert!(
        wrong.is_empty(),
        "examples not answering as documented:\n{}",
        wrong.join("\n")
    );
}
