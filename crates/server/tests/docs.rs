//! The documentation cannot drift from the code:
//! - every example query in the docs runs: each line of a ```srql block (and each
//!   `srql query "..."` command) must answer 200 against PostgreSQL through the HTTP API,
//!   each line of a ```srql-error block 400 with a message;
//! - docs/configuration.md names every environment variable the binary reads;
//! - every file the docs link to or mention exists in the repository, so no page sends
//!   a reader to a note they never received.

mod support;

use std::path::{Path, PathBuf};

use axum::http::StatusCode;
use serde_json::json;
use store::testing::TestDb;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// README.md and every page of docs/: what a user reads about the product.
fn user_docs() -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.sort();
    pages.insert(0, repo().join("README.md"));
    pages
}

/// (query, must succeed) for every example, in document order.
fn examples(markdown: &str, name: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut block: Option<bool> = None;
    for line in markdown.lines() {
        let trimmed = line.trim();
        match (block, trimmed) {
            (None, "```srql") => block = Some(true),
            (None, "```srql-error") => block = Some(false),
            (Some(_), "```") => block = None,
            (Some(ok), query) if !query.is_empty() => out.push((query.to_string(), ok)),
            (None, _) => {
                if let Some(query) = trimmed
                    .strip_prefix("srql query \"")
                    .and_then(|rest| rest.split('"').next())
                {
                    out.push((query.to_string(), true));
                }
            }
            _ => {}
        }
    }
    assert!(block.is_none(), "unclosed code block in {name}");
    out
}

#[tokio::test]
async fn every_example_in_the_docs_answers_as_documented() {
    let reference = examples(&read(&repo().join("docs/srql.md")), "docs/srql.md");
    assert!(
        reference.iter().filter(|(_, ok)| *ok).count() >= 20,
        "the reference has examples"
    );
    assert!(reference.iter().any(|(_, ok)| !*ok));
    let mut all = Vec::new();
    for page in user_docs() {
        let name = page
            .strip_prefix(repo())
            .unwrap_or(&page)
            .display()
            .to_string();
        let found = examples(&read(&page), &name);
        all.extend(found.into_iter().map(|(q, ok)| (name.clone(), q, ok)));
    }
    for page in ["README.md", "docs/workload.md"] {
        assert!(
            all.iter().any(|(p, _, _)| p.ends_with(page)),
            "{page} has examples"
        );
    }

    let db = TestDb::migrated().await;
    support::seed(&db, 300, 1, 9).await;
    let app = support::app(&db, None);
    let mut wrong = Vec::new();
    for (page, query, ok) in &all {
        let r = support::query(&app, json!({ "query": query })).await;
        let want = if *ok {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        if r.status != want || (!ok && r.error().is_empty()) {
            wrong.push(format!("{page}: {query}\n  -> {} {}", r.status, r.body));
        }
    }
    assert!(
        wrong.is_empty(),
        "examples not answering as documented:\n{}",
        wrong.join("\n")
    );
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The quoted names after each `marker` in `source`.
fn quoted_after<'a>(source: &'a str, marker: &str) -> Vec<&'a str> {
    source
        .split(marker)
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect()
}

#[test]
fn the_configuration_page_names_every_environment_variable() {
    let mut sources = Vec::new();
    for krate in std::fs::read_dir(repo().join("crates")).expect("crates/") {
        let src = krate.expect("entry").path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut sources);
        }
    }
    let mut variables = Vec::new();
    for file in &sources {
        let source = read(file);
        // clap's `env = "X"` and the log filter's `from_env("X")`.
        variables.extend(
            quoted_after(&source, "env = \"")
                .into_iter()
                .map(String::from),
        );
        variables.extend(
            quoted_after(&source, "from_env(\"")
                .into_iter()
                .map(String::from),
        );
    }
    assert!(variables.len() >= 25, "found the settings: {variables:?}");
    let page = read(&repo().join("docs/configuration.md"));
    let missing: Vec<&String> = variables
        .iter()
        .filter(|v| !page.contains(&format!("`{v}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md does not describe {missing:?}"
    );
}

/// Targets of `[text](target)` links that point into the repository.
fn relative_links(markdown: &str) -> Vec<&str> {
    markdown
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .map(|target| target.split('#').next().unwrap_or(""))
        .filter(|t| !t.is_empty() && !t.contains("://") && !t.starts_with("mailto:"))
        .collect()
}

/// Every `something.md` a page names in its prose or code.
fn mentioned_markdown_files(markdown: &str) -> Vec<&str> {
    let is_path_char = |c: char| c.is_ascii_alphanumeric() || "_./-".contains(c);
    let mut out = Vec::new();
    for (at, _) in markdown.match_indices(".md") {
        let end = at + 3;
        if markdown[end..].chars().next().is_some_and(is_path_char) {
            continue;
        }
        let start = markdown[..at]
            .char_indices()
            .rev()
            .take_while(|(_, c)| is_path_char(*c))
            .last()
            .map_or(at, |(i, _)| i);
        let name = markdown[start..end].trim_start_matches("./");
        if name.len() > 3 {
            out.push(name);
        }
    }
    out
}

#[test]
fn every_file_the_docs_point_to_exists() {
    let root = repo();
    let exists = |page: &Path, target: &str| {
        page.parent().unwrap().join(target).exists() || root.join(target).exists()
    };
    let mut pages = user_docs();
    pages.push(root.join("ARCHITECTURE.md"));
    let mut broken = Vec::new();
    for page in &pages {
        let text = read(page);
        let targets = relative_links(&text)
            .into_iter()
            .chain(mentioned_markdown_files(&text));
        for target in targets {
            if !exists(page, target) {
                let name = page.strip_prefix(&root).unwrap_or(page);
                broken.push(format!("{}: {target}", name.display()));
            }
        }
    }
    // BENCHMARKS.md is partly written by the benchmarks: its links are checked, its prose
    // is whatever the recorded runs said.
    let benchmarks = root.join("BENCHMARKS.md");
    for target in relative_links(&read(&benchmarks)) {
        if !exists(&benchmarks, target) {
            broken.push(format!("BENCHMARKS.md: {target}"));
        }
    }
    assert!(
        broken.is_empty(),
        "pointing nowhere:\n{}",
        broken.join("\n")
    );
    let architecture = read(&root.join("ARCHITECTURE.md"));
    assert!(
        !architecture.contains("](http"),
        "ARCHITECTURE.md describes this repository: it links nowhere outside it"
    );
}
