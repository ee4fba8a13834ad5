//! Search inside traces, against the independent span oracle (support/span_oracle.rs):
//! every condition form on both summary paths and the on-the-fly path, same-span
//! semantics, negation, paging, `stats:`, attributes on span rows, and late spans
//! (arriving after their trace was summarized) in both summary modes.

mod support;

use std::collections::BTreeSet;

use axum::http::StatusCode;
use axum::Router;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use store::summaries::{self, Maintenance, RefreshMethod, SummaryConfig, SummaryMode};
use store::testing::TestDb;
use support::span_oracle::{
    attr, eq, matching_traces, neg, pos, resource, AttrTest, Cond, On, Text,
};
use support::RawSpan;
use workload::Span;

fn config() -> SummaryConfig {
    SummaryConfig {
        window: Duration::days(7),
        retention: Duration::days(7),
        refresh_interval: Duration::minutes(2),
    }
}

/// A span of a hand-made trace, `ms` long, with the given attribute objects.
fn span(trace: &str, id: &str, parent: &str, service: &str, ms: i64, attrs: Value) -> Span {
    let at = Utc::now() - Duration::hours(3);
    let start = at.timestamp_nanos_opt().unwrap_or(0);
    let mut s = support::edge_traces(at).remove(0);
    s.timestamp = at;
    s.trace_id = trace.into();
    s.span_id = id.into();
    s.parent_span_id = parent.into();
    s.name = format!("op {id}");
    s.start_time_unix_nano = start;
    s.end_time_unix_nano = start + ms * 1_000_000;
    s.attributes = attrs.to_string();
    let resource = std::sync::Arc::make_mut(&mut s.resource);
    resource.service_name = Some(service.into());
    resource.attributes = json!({ "k8s.namespace.name": format!("ns-{service}") }).to_string();
    s
}

/// Traces for the value rules: 503 as a number, as text, as 503.0; booleans; two
/// conditions true on different spans of one trace but never on the same span.
fn value_traces() -> Vec<Span> {
    let t = |n: &str| format!("span00000000000000000000000{n}");
    vec![
        span(
            &t("num"),
            "n1",
            "",
            "svc-a",
            5,
            json!({ "http.status_code": 503 }),
        ),
        span(
            &t("txt"),
            "t1",
            "",
            "svc-a",
            5,
            json!({ "http.status_code": "503", "Flag": true }),
        ),
        span(
            &t("flt"),
            "f1",
            "",
            "svc-b",
            5,
            json!({ "http.status_code": 503.0 }),
        ),
        span(&t("flt"), "f2", "f1", "svc-b", 5, json!({ "flag": "true" })),
        // svc-a on one span, 1.5 s on the other: not the same span.
        span(&t("two"), "w1", "", "svc-a", 20, json!({})),
        span(
            &t("two"),
            "w2",
            "w1",
            "svc-c",
            1500,
            json!({ "db.system": "mysql" }),
        ),
        // Both on one span.
        span(&t("one"), "o1", "", "svc-c", 20, json!({})),
        span(
            &t("one"),
            "o2",
            "o1",
            "svc-a",
            1500,
            json!({ "db.system": "postgresql" }),
        ),
    ]
}

/// The cases: conditions, plus a summary filter with its oracle.
fn cases() -> Vec<(Vec<Cond>, &'static str)> {
    use AttrTest::*;
    vec![
        (vec![pos(attr("http.status_code", eq("503")))], ""),
        (vec![pos(attr("http.status_code", AtLeast(500.0)))], ""),
        (vec![pos(attr("http.status_code", Below(300.0)))], ""),
        (vec![neg(attr("http.status_code", AtLeast(400.0)))], ""),
        (
            vec![
                pos(attr("http.status_code", Exists)),
                pos(attr("Flag", eq("true"))),
            ],
            "",
        ),
        (vec![pos(attr("flag", eq("true")))], ""),
        (vec![neg(attr("http.status_code", Exists))], ""),
        (
            vec![pos(attr(
                "db.system",
                AnyOf(vec!["mysql".into(), "postgresql".into()]),
            ))],
            "",
        ),
        (vec![pos(attr("http.route", Like("%orders%".into())))], ""),
        (vec![pos(attr("http.status_code", Like("50%".into())))], ""),
        (
            vec![pos(resource("k8s.namespace.name", eq("ns-svc-a")))],
            "",
        ),
        (
            vec![
                pos(On::ServiceName(Text::Eq("svc-a".into()))),
                pos(On::DurationOver(1000.0)),
            ],
            "",
        ),
        (
            vec![
                pos(On::Name(Text::Like("%orders%".into()))),
                neg(On::StatusCode(2)),
            ],
            "",
        ),
        (
            vec![pos(On::Kind(3)), pos(attr("db.system", eq("postgresql")))],
            "",
        ),
        (
            vec![
                pos(On::StatusCode(2)),
                neg(On::ServiceName(Text::Eq("svc-1".into()))),
            ],
            "span_count:>3",
        ),
        (
            vec![neg(On::Name(Text::Like("%SELECT%".into())))],
            "error_count:>0",
        ),
    ]
}

fn query_text(conds: &[Cond], summary_filter: &str, range: &str) -> String {
    let tokens: Vec<String> = conds.iter().map(Cond::srql).collect();
    format!(
        "in:otel_trace_summaries {range} {summary_filter} {}",
        tokens.join(" ")
    )
}

/// The trace ids the API returns on `source`, all pages, in order.
async fn ids(app: &Router, query: &str, source: &str, limit: u32) -> Vec<String> {
    support::all_pages(
        app,
        json!({ "query": query, "source": source, "limit": limit }),
    )
    .await
    .iter()
    .map(|r| r["trace_id"].as_str().unwrap_or_default().to_string())
    .collect()
}

/// What the oracle expects: matching traces in range passing `summary`, newest first.
fn expected(
    spans: &[RawSpan],
    conds: &[Cond],
    summary: &dyn Fn(&support::Summary) -> bool,
    from: DateTime<Utc>,
) -> Vec<String> {
    let matching = matching_traces(spans, conds);
    let mut rows: Vec<support::Summary> = support::summarize(spans)
        .into_iter()
        .filter(|s| s.timestamp >= from && matching.contains(&s.trace_id) && summary(s))
        .collect();
    rows.sort_by(|a, b| (b.timestamp, &b.trace_id).cmp(&(a.timestamp, &a.trace_id)));
    rows.into_iter().map(|s| s.trace_id).collect()
}

fn summary_filter(text: &str) -> Box<dyn Fn(&support::Summary) -> bool> {
    match text {
        "" => Box::new(|_| true),
        "span_count:>3" => Box::new(|s| s.span_count > 3),
        "error_count:>0" => Box::new(|s| s.error_count > 0),
        other => panic!("no oracle for {other}"),
    }
}

/// Every case on every path equals the oracle over the spans stored now.
async fn check_all_cases(db: &TestDb, app: &Router, summaries_source: &str) {
    let spans = support::raw_spans(db).await;
    let from = Utc::now() - Duration::days(6);
    let range = format!("time:[{},]", from.to_rfc3339());
    let mut nonempty = 0;
    for (conds, filter) in cases() {
        let q = query_text(&conds, filter, &range);
        let want = expected(&spans, &conds, summary_filter(filter).as_ref(), from);
        let summaries = support::query(app, json!({ "query": q, "source": "summaries" })).await;
        assert_eq!(summaries.status, StatusCode::OK, "{q}: {}", summaries.body);
        assert_eq!(summaries.source(), summaries_source, "{q}");
        for source in ["summaries", "on_the_fly"] {
            assert_eq!(ids(app, &q, source, 37).await, want, "{q} on {source}");
        }
        nonempty += usize::from(!want.is_empty());
        let count = support::query(
            app,
            json!({ "query": format!("{q} stats:\"count() as n\""), "source": "summaries" }),
        )
        .await;
        assert_eq!(count.results()[0]["n"], json!(want.len()), "{q}");
    }
    assert!(nonempty >= 10, "only {nonempty} cases matched anything");
}

async fn seeded() -> (TestDb, Vec<Span>) {
    let db = TestDb::migrated().await;
    let late = support::seed(&db, 6_000, 2, 11).await;
    support::insert(&db, &value_traces()).await;
    (db, late)
}

#[tokio::test]
async fn span_conditions_match_the_oracle_on_every_path_with_late_spans() {
    let (db, late) = seeded().await;
    let app = support::app(&db, None);
    let mut client = db.client().await;
    summaries::ensure_view(&mut client, &config())
        .await
        .unwrap();
    check_all_cases(&db, &app, "materialized_view").await;

    // Same span, not just same trace.
    let range = "time:last_7d";
    let both =
        format!("in:otel_trace_summaries {range} span.service_name:svc-a span.duration_ms:>1000");
    let found = ids(&app, &both, "summaries", 100).await;
    assert!(
        found.contains(&"span00000000000000000000000one".to_string()),
        "{found:?}"
    );
    assert!(
        !found.contains(&"span00000000000000000000000two".to_string()),
        "{found:?}"
    );

    // Late spans arrive after the view was built: they count at once (the lookup reads
    // spans), before and after the refresh, on both paths. Before it, the summary rows
    // themselves are stale, so only the span conditions are compared.
    support::insert(&db, &late).await;
    let marker = late_marker(&db).await;
    assert_late_marker_counts(&app, &marker).await;
    summaries::refresh(&client, RefreshMethod::Concurrently)
        .await
        .unwrap();
    check_all_cases(&db, &app, "materialized_view").await;
    assert_paths_identical(&app).await;
    assert_late_marker_counts(&app, &marker).await;
}

#[tokio::test]
async fn span_conditions_match_the_oracle_on_the_incremental_table_with_late_spans() {
    let (db, late) = seeded().await;
    let maintenance = Maintenance {
        mode: SummaryMode::Incremental,
        drain_interval: Duration::milliseconds(250),
    };
    store::setup::run_with(&db.url, &config(), &maintenance, false, &mut |_| {})
        .await
        .unwrap();
    let app = support::app(&db, None);
    check_all_cases(&db, &app, "summary_table").await;
    support::insert(&db, &late).await;
    let marker = late_marker(&db).await;
    assert_late_marker_counts(&app, &marker).await;
    let run = server::scheduler::tick(&db.url)
        .await
        .unwrap()
        .refresh
        .expect("the service drains");
    assert_eq!(run.outcome, summaries::RunOutcome::Ok, "{run:?}");
    check_all_cases(&db, &app, "summary_table").await;
    assert_paths_identical(&app).await;
    assert_late_marker_counts(&app, &marker).await;
}

/// The widened aggregation reads only the traces of the spans that pass a positive
/// condition when those are few (`srql_plan::FEW_MATCHES`), else the whole range: a
/// value on more spans than that, alone, beside a rare one, and negated, equals the
/// oracle on the on-the-fly path, as on the summaries.
#[tokio::test]
async fn many_matching_spans_read_the_whole_range_on_the_fly_and_agree() {
    let (db, _) = seeded().await;
    let many = usize::try_from(srql_plan::FEW_MATCHES).unwrap() + 300;
    let common: Vec<Span> = (0..many)
        .map(|i| {
            let trace = format!("many{i:028}");
            span(&trace, "m1", "", "svc-m", 5, json!({ "srql.many": "yes" }))
        })
        .collect();
    support::insert(&db, &common).await;
    // One trace holds both values, on different spans.
    let both = "span00000000000000000000000num";
    let mut extra = value_traces().remove(0);
    extra.span_id = "n2".into();
    extra.parent_span_id = "n1".into();
    extra.attributes = json!({ "srql.many": "yes" }).to_string();
    support::insert(&db, &[extra]).await;
    let maintenance = Maintenance {
        mode: SummaryMode::Incremental,
        drain_interval: Duration::milliseconds(250),
    };
    store::setup::run_with(&db.url, &config(), &maintenance, false, &mut |_| {})
        .await
        .unwrap();
    let app = support::app(&db, None);
    let spans = support::raw_spans(&db).await;
    let from = Utc::now() - Duration::days(6);
    let range = format!("time:[{},]", from.to_rfc3339());
    let yes = || attr("srql.many", eq("yes"));
    let rare = || attr("http.status_code", eq("503"));
    for conds in [
        vec![pos(yes())],
        vec![pos(yes()), neg(rare())],
        vec![neg(yes())],
        vec![pos(rare()), neg(yes())],
    ] {
        let q = query_text(&conds, "", &range);
        let want = expected(&spans, &conds, &|_| true, from);
        assert!(!want.is_empty(), "{q}");
        assert_eq!(ids(&app, &q, "on_the_fly", 500).await, want, "{q}");
        assert_eq!(ids(&app, &q, "summaries", 500).await, want, "{q}");
        let first_page = &want[..want.len().min(500)];
        assert_eq!(
            first_page_looking_for_candidates(&db, &q).await,
            first_page,
            "{q}"
        );
    }
    let matching = spans
        .iter()
        .filter(|s| {
            s.attributes
                .as_ref()
                .is_some_and(|a| a.get("srql.many").is_some())
        })
        .count();
    assert!(matching > many, "{matching} spans carry the common value");
    let want = expected(&spans, &[pos(yes())], &|_| true, from);
    assert!(
        want.contains(&both.to_string()),
        "a trace matching on its second span"
    );
}

/// The first page (500 rows) of `query` on the on-the-fly path with the candidate spans
/// looked for first whatever the statistics say: on a database this small they would
/// say the range is too small for that to pay (`trace_reach::looks_for_candidates`),
/// and the branch that reads only the candidates' traces would go untested.
async fn first_page_looking_for_candidates(db: &TestDb, query: &str) -> Vec<String> {
    let client = store::db::connect(&db.reader_url())
        .await
        .expect("reader login");
    let catalog = srql_plan::Catalog {
        stored_spans: None,
        ..summaries::catalog(&client).await.expect("catalog")
    };
    let page = srql_plan::PageRequest {
        limit: Some(500),
        ..Default::default()
    };
    let plan = srql_plan::compile(
        query,
        &catalog,
        &page,
        &srql_lang::Limits::default(),
        Utc::now(),
    )
    .expect("compile")
    .pin_source(srql_plan::SourcePreference::OnTheFly)
    .expect("on the fly");
    // A positive attribute equality is what candidates are looked for by.
    let positive = query.contains(" span.attributes.");
    let sql = srql_plan::render(&plan).sql;
    assert_eq!(sql.contains("srql_span_candidates"), positive, "{query}");
    store::exec::run(&client, &plan)
        .await
        .expect("run")
        .results
        .iter()
        .map(|r| r["trace_id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A span with a marker attribute, dated an hour before its (summarized) trace's first
/// span: the trace now matches the marker and stops matching its negation.
async fn late_marker(db: &TestDb) -> String {
    let trace = "span00000000000000000000000num";
    let mut s = value_traces().remove(0);
    s.span_id = "late1".into();
    s.parent_span_id = "n1".into();
    s.timestamp -= Duration::hours(1);
    s.attributes = json!({ "late.marker": "yes" }).to_string();
    assert_eq!(s.trace_id, trace);
    support::insert(db, &[s]).await;
    trace.to_string()
}

async fn assert_late_marker_counts(app: &Router, trace: &str) {
    for source in ["summaries", "on_the_fly"] {
        let hit = ids(
            app,
            "in:otel_trace_summaries time:last_7d span.attributes.late.marker:yes",
            source,
            100,
        )
        .await;
        assert_eq!(hit, vec![trace.to_string()], "{source}");
        let rest: BTreeSet<String> = ids(
            app,
            "in:otel_trace_summaries time:last_7d !span.attributes.late.marker:*",
            source,
            500,
        )
        .await
        .into_iter()
        .collect();
        assert!(!rest.contains(trace), "{source}");
    }
}

/// Once summaries are fresh, the two paths give identical bodies, cursors included.
async fn assert_paths_identical(app: &Router) {
    for q in [
        "in:otel_trace_summaries time:last_7d span.attributes.http.status_code:>=500 sort:duration_ms:desc limit:9",
        "in:otel_trace_summaries time:last_7d !span.status_code:2 span.kind:3 sort:span_count:asc limit:11",
        "in:otel_trace_summaries time:last_7d span.resource.service.name:(svc-1,svc-2) span.duration_ms:>50",
    ] {
        let a = support::query(app, json!({ "query": q, "source": "summaries" })).await;
        let b = support::query(app, json!({ "query": q, "source": "on_the_fly" })).await;
        assert_eq!(a.status, StatusCode::OK, "{q}: {}", a.body);
        assert_eq!(a.body, b.body, "{q}");
        assert!(!a.results().is_empty(), "{q}");
    }
}

#[tokio::test]
async fn attributes_filter_span_rows() {
    let (db, _) = seeded().await;
    let app = support::app(&db, None);
    let spans = support::raw_spans(&db).await;
    let check = |q: &str, on: Vec<On>, negated: bool| {
        let want: BTreeSet<String> = spans
            .iter()
            .filter(|s| on.iter().all(|o| support::span_oracle::span_matches(s, o)) != negated)
            .map(|s| format!("{}/{}", s.trace_id, s.span_id))
            .collect();
        (q.to_string(), want)
    };
    for (q, want) in [
        check(
            "in:traces attributes.http.status_code:503",
            vec![attr("http.status_code", eq("503"))],
            false,
        ),
        check(
            "in:traces attributes.http.status_code:>=500 span_kind:2",
            vec![
                attr("http.status_code", AttrTest::AtLeast(500.0)),
                On::Kind(2),
            ],
            false,
        ),
        check(
            "in:traces !attributes.http.status_code:*",
            vec![attr("http.status_code", AttrTest::Exists)],
            true,
        ),
        check(
            "in:traces resource.k8s.namespace.name:ns-svc-b span_name:%f%",
            vec![
                resource("k8s.namespace.name", eq("ns-svc-b")),
                On::Name(Text::Like("%f%".into())),
            ],
            false,
        ),
    ] {
        let got: BTreeSet<String> = support::all_pages(&app, json!({ "query": q, "limit": 500 }))
            .await
            .iter()
            .map(|r| {
                format!(
                    "{}/{}",
                    r["trace_id"].as_str().unwrap(),
                    r["span_id"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(got, want, "{q}");
        assert!(!got.is_empty(), "{q}");
    }
}

#[tokio::test]
async fn bad_span_conditions_are_400s_naming_the_token() {
    let db = TestDb::migrated().await;
    let app = support::app(&db, None);
    for (q, needle) in [
        (
            "in:otel_trace_summaries span.colour:red",
            "at position 24: unknown field `span.colour`",
        ),
        (
            "in:otel_trace_summaries span.kind:server",
            "at position 24: `span.kind` expects an integer",
        ),
        (
            "in:otel_trace_summaries span.attributes.x:>abc",
            "at position 24: `span.attributes.x` expects a number",
        ),
        (
            "in:otel_trace_summaries span.name:>3",
            "`span.name` is text",
        ),
        (
            "in:traces span.name:x",
            "unknown field `span.name` for traces",
        ),
        (
            "in:otel_trace_summaries attributes.x:1",
            "unknown field `attributes.x` for otel_trace_summaries",
        ),
        (
            "in:otel_trace_summaries span.attributes.:1",
            "at position 40: expected an attribute key",
        ),
    ] {
        let r = support::query(&app, json!({ "query": q })).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}: {}", r.body);
        assert!(r.error().contains(needle), "{q}: {}", r.error());
    }
    let many = (0..17)
        .map(|i| format!("span.kind:{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let r = support::query(
        &app,
        json!({ "query": format!("in:otel_trace_summaries {many}") }),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.error()
            .contains("more conditions on spans than the limit of 16"),
        "{}",
        r.error()
    );
}
