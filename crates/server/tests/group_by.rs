//! `stats:"... by KEY[, KEY]"` against PostgreSQL through `/api/query`: the groups equal an
//! independent count over the raw spans (on both summary paths and on spans), are ordered
//! by the first aggregate, are cut at `srql_plan::MAX_GROUPS` with a header saying so, and
//! bad forms are 400s naming the problem.

mod support;

use std::collections::BTreeMap;

use axum::http::StatusCode;
use chrono::{Duration, Utc};
use serde_json::{json, Value};
use store::testing::TestDb;

/// Groups as `(keys as JSON text, counts)` rows, so the comparison does not depend on how PostgreSQL's
/// collation orders keys with equal counts; the order by count is checked apart.
fn groups(results: &[Value], keys: &[&str], aliases: &[&str]) -> BTreeMap<Vec<String>, Vec<i64>> {
    results
        .iter()
        .map(|row| {
            let object = row.as_object().expect("a group is an object");
            assert_eq!(
                object.keys().collect::<Vec<_>>(),
                keys.iter().chain(aliases).collect::<Vec<_>>(),
                "keys first, then the aliases, in order: {row}"
            );
            (
                keys.iter().map(|k| row[*k].to_string()).collect(),
                aliases.iter().map(|a| row[*a].as_i64().unwrap()).collect(),
            )
        })
        .collect()
}

fn assert_largest_first(results: &[Value], first_alias: &str) {
    let counts: Vec<i64> = results
        .iter()
        .map(|r| r[first_alias].as_i64().unwrap())
        .collect();
    assert!(
        counts.windows(2).all(|w| w[0] >= w[1]),
        "ordered by `{first_alias}` descending: {counts:?}"
    );
}

#[tokio::test]
async fn groups_equal_an_independent_count_on_every_path() {
    let db = TestDb::migrated().await;
    support::seed(&db, 3_000, 1, 21).await;
    let app = support::app_over_view(&db).await;
    let spans = support::raw_spans(&db).await;
    let since = Utc::now() - Duration::days(7);

    // Traces per root service, with those not OK (a missing status counts as 0).
    let mut expected: BTreeMap<Vec<String>, Vec<i64>> = BTreeMap::new();
    for s in support::summarize(&spans)
        .iter()
        .filter(|s| s.timestamp >= since)
    {
        let counts = expected
            .entry(vec![json!(s.root_service_name).to_string()])
            .or_insert(vec![0, 0]);
        counts[0] += 1;
        counts[1] += i64::from(s.status_code.unwrap_or(0) != 1);
    }
    assert!(
        expected.contains_key(&vec!["null".to_string()]),
        "the edge traces include one without a root: its group has a null key"
    );
    let q = "in:otel_trace_summaries time:last_7d stats:\"count() as traces, sum(if(status_code != 1, 1, 0)) as not_ok by root_service_name\"";
    let mut bodies = Vec::new();
    for source in ["summaries", "on_the_fly"] {
        let r = support::query(&app, json!({ "query": q, "source": source })).await;
        assert_eq!(r.status, StatusCode::OK, "{source}: {}", r.body);
        assert_eq!(
            groups(r.results(), &["root_service_name"], &["traces", "not_ok"]),
            expected,
            "{source}"
        );
        assert_largest_first(r.results(), "traces");
        assert!(r.headers.get("x-srql-groups-truncated").is_none());
        bodies.push(r.body);
    }
    assert_eq!(bodies[0], bodies[1], "both paths give the same body");

    // Spans per service and operation.
    let mut expected: BTreeMap<Vec<String>, Vec<i64>> = BTreeMap::new();
    for s in spans.iter().filter(|s| s.timestamp >= since) {
        let key = vec![json!(s.service_name).to_string(), json!(s.name).to_string()];
        expected.entry(key).or_insert(vec![0])[0] += 1;
    }
    let r = support::query(
        &app,
        json!({ "query": "in:traces time:last_7d stats:\"count() as spans by service_name, span_name\"" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.source(), "spans");
    assert_eq!(
        groups(r.results(), &["service_name", "name"], &["spans"]),
        expected
    );
    assert_largest_first(r.results(), "spans");

    // /translate shows the grouping and suggests a bar chart of the first key.
    let r = support::post(&app, "/translate", json!({ "query": q })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let sql = r.body["sql"].as_str().unwrap();
    assert!(sql.contains("GROUP BY 1"), "{sql}");
    assert!(sql.contains("ORDER BY 2 DESC, 1"), "{sql}");
    let names: Vec<&Value> = r.body["viz"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["name"])
        .collect();
    assert_eq!(
        names,
        [
            &json!("root_service_name"),
            &json!("traces"),
            &json!("not_ok")
        ]
    );
    assert!(r.body["viz"]["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["kind"] == json!("bar") && s["x"] == json!("root_service_name")));
}

#[tokio::test]
async fn groups_beyond_the_bound_are_cut_and_the_answer_says_so() {
    let db = TestDb::migrated().await;
    let now = Utc::now();
    let template = support::edge_traces(now).remove(0);
    let bound = srql_plan::MAX_GROUPS as usize;
    // One more operation than the bound, one of them with two spans: it must be kept.
    let spans: Vec<_> = (0..=bound + 1)
        .map(|i| {
            let mut s = template.clone();
            s.trace_id = format!("{i:032x}");
            s.span_id = format!("{i:016x}");
            s.name = format!("op-{}", i.min(bound));
            s
        })
        .collect();
    support::insert(&db, &spans).await;
    let app = support::app(&db, None);

    let r = support::query(
        &app,
        json!({ "query": "in:traces stats:\"count() as spans by name\"" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.results().len(), bound);
    assert_eq!(
        r.results()[0],
        json!({ "name": format!("op-{bound}"), "spans": 2 })
    );
    assert_eq!(
        r.headers
            .get("x-srql-groups-truncated")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );

    // Within the bound: every group, no header.
    let r = support::query(
        &app,
        json!({ "query": "in:traces stats:\"count() as spans by service_name\"" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.results().len(), 1);
    assert!(r.headers.get("x-srql-groups-truncated").is_none());
}

#[tokio::test]
async fn bad_group_by_forms_are_400s_naming_the_problem() {
    let db = TestDb::migrated().await;
    let app = support::app(&db, None);
    for (query, says) in [
        (
            "in:traces stats:\"count() as n by service_name, name, kind\"",
            "at most 2 fields",
        ),
        (
            "in:otel_trace_summaries stats:\"count() as n by trace_id\"",
            "one value per row",
        ),
        (
            "in:traces stats:\"count() as n by span_id\"",
            "one value per row",
        ),
        (
            "in:otel_trace_summaries stats:\"count() as n by duration_ms\"",
            "cannot group otel_trace_summaries by `duration_ms`",
        ),
        (
            "in:traces stats:\"count() as n by attributes\"",
            "cannot group traces by `attributes`",
        ),
        (
            "in:traces stats:\"count() as n by service_name, service.name\"",
            "already a column",
        ),
        (
            "in:traces stats:\"count() as n by\"",
            "expected a field name",
        ),
        (
            "in:traces stats:\"count() as n by name\" stats:\"count() as m by kind\"",
            "only one `stats:`",
        ),
    ] {
        let r = support::query(&app, json!({ "query": query })).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.body);
        assert!(r.error().contains(says), "{query}: {}", r.error());
    }
}
