//! The shared query corpus (`tests/queries/*.srql` at the repository root), planned against
//! a catalog with ready summaries and one without, snapshotted as source, reason, SQL and
//! bind values, and each query's parse tree and typed plan. Queries under `err/` must fail
//! with a message, snapshotted too. `server/tests/corpus.rs` runs the same queries on
//! PostgreSQL.

use chrono::{DateTime, Duration, TimeZone, Utc};
use srql_plan::{compile, render, Catalog, PageRequest, SummaryKind, SummaryState};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

fn ready() -> Catalog {
    Catalog {
        summaries: SummaryState::Ready {
            kind: SummaryKind::MaterializedView,
            covers_from: now() - Duration::days(7) - Duration::minutes(1),
            as_of: now() - Duration::minutes(1),
        },
        retention: Some(Duration::days(7)),
        trace_extents: false,
        distributed: false,
        stored_spans: None,
    }
}

fn describe(text: &str, catalog: &Catalog) -> String {
    let page = PageRequest::default();
    match compile(text, catalog, &page, &srql_lang::Limits::default(), now()) {
        Ok(plan) => {
            let sql = render(&plan);
            format!(
                "source: {}\nreason: {}\nparams: {}\n\n{}\n",
                plan.source.label(),
                plan.reason,
                serde_json::to_string(&sql.params).unwrap(),
                sql.sql
            )
        }
        Err(e) => format!("error: {e}\n"),
    }
}

#[test]
fn corpus_with_ready_summaries() {
    let mut failed = Vec::new();
    insta::glob!("../../../tests/queries", "*.srql", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let out = describe(text.trim_end_matches('\n'), &ready());
        if out.starts_with("error:") {
            failed.push(format!("{}: {out}", path.display()));
        }
        insta::assert_snapshot!(out);
    });
    assert!(
        failed.is_empty(),
        "`ok` queries that fail:\n{}",
        failed.concat()
    );
}

#[test]
fn corpus_without_summaries_takes_the_on_the_fly_path() {
    insta::glob!("../../../tests/queries", "*.srql", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let out = describe(text.trim_end_matches('\n'), &Catalog::without_summaries());
        assert!(!out.contains("source: materialized_view"), "{out}");
        insta::assert_snapshot!(out);
    });
}

#[test]
fn corpus_errors() {
    insta::glob!("../../../tests/queries/err", "*.srql", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let out = describe(text.trim_end_matches('\n'), &ready());
        assert!(out.starts_with("error:"), "{}: {out}", path.display());
        insta::assert_snapshot!(out);
    });
}

/// Each stage's output for every query of the corpus, against ready summaries: the parse
/// tree, then the typed plan (what `render` turns into the SQL the other snapshots show).
#[test]
fn corpus_stages() {
    insta::glob!("../../../tests/queries", "*.srql", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let text = text.trim_end_matches('\n');
        let query = srql_lang::parse(text, &srql_lang::Limits::default()).unwrap();
        let plan = srql_plan::plan(&query, &ready(), &PageRequest::default(), now()).unwrap();
        let output = match &plan.output {
            srql_plan::Output::Rows { page, .. } => format!("{page:#?}"),
            srql_plan::Output::Aggregate {
                keys,
                measures,
                groups,
                ..
            } => {
                let groups: Vec<&str> = groups.iter().map(|f| f.name).collect();
                format!("keys: {keys:#?}\nmeasures: {measures:#?}\ngroups: {groups:?}")
            }
        };
        insta::assert_snapshot!(format!(
            "parse: {query:#?}\n\nsource: {:?}\nreason: {:?}\nrange: {:?}\npredicates: {:#?}\n{output}\n",
            plan.source, plan.reason, plan.range, plan.predicates
        ));
    });
}
