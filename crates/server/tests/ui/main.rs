//! The traces tab in headless Chromium, driven over WebDriver, against the real server on
//! generated data. Each check compares what the page shows with what the API answers for
//! the same query.

#[path = "../support/mod.rs"]
mod support;

mod assets;
mod browser;
mod controls;
mod service;

use std::path::PathBuf;

use serde_json::{json, Value};
use tokio::sync::Mutex;

use browser::Browser as Session;
use service::{Service, BIG_SPANS, BIG_TRACE, HOSTILE_NAME, HOSTILE_TRACE};

/// One browser at a time: Chromium is heavy and the machines running this are small.
static BROWSER: Mutex<()> = Mutex::const_new(());

/// Generous: the page's own requests answer in milliseconds, but CI machines are shared.
const WAIT: u64 = 60;

const ROW_IDS: &str =
    "[...document.querySelectorAll('#traces tbody tr[data-trace-id]')].map(r => r.dataset.traceId)";

fn page_ids(s: &Session) -> Vec<String> {
    serde_json::from_value(s.js(&format!("return {ROW_IDS};"), vec![])).expect("ids")
}

fn loaded(s: &Session) -> String {
    s.js("return document.body.dataset.listLoaded || '';", vec![])
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Waits until the list has loaded once more than it had at `before`.
fn wait_list(s: &Session, before: &str) {
    s.wait_for(
        "the list to load",
        &format!(
            "document.body.dataset.listLoaded && document.body.dataset.listLoaded !== '{before}'"
        ),
        WAIT,
    );
}

fn query_bar(s: &Session) -> String {
    s.js("return document.getElementById('query').value;", vec![])
        .as_str()
        .expect("query text")
        .to_string()
}

async fn api_page(app: &axum::Router, q: &str, cursor: Option<&str>) -> Value {
    let mut body = json!({ "query": q, "limit": 50 });
    if let Some(c) = cursor {
        body["cursor"] = json!(c);
    }
    let r = support::query(app, body).await;
    assert_eq!(r.status, 200, "{q}: {:?}", r.body);
    r.body
}

fn ids(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["trace_id"].as_str().expect("trace_id").to_string())
        .collect()
}

/// docs/ when `SRQL_UPDATE_SCREENSHOTS` is set (the README shows them), else a scratch
/// directory, so a plain test run leaves the tree clean.
fn screenshot_path(name: &str) -> PathBuf {
    if std::env::var_os("SRQL_UPDATE_SCREENSHOTS").is_some() {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs")
            .join(name)
    } else {
        std::env::temp_dir().join(name)
    }
}

fn apply(s: &Session) {
    let before = loaded(s);
    s.click(&s.find("#controls button[type=submit]"));
    wait_list(s, &before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_shows_the_api_rows_for_filters_sorts_and_pages() {
    let _one = BROWSER.lock().await;
    let svc: Service = service::start(None).await;
    let app = support::app(&svc.db, None);
    let s = Session::open();

    s.goto(&format!("{}/?range=24h", svc.base));
    wait_list(&s, "");
    let q = query_bar(&s);
    assert!(q.contains("time:last_24h"), "{q}");
    let first = api_page(&app, &q, None).await;
    assert_eq!(page_ids(&s), ids(&first), "first page");
    assert_eq!(ids(&first).len(), 50);

    // A service filter.
    let service = first["results"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|r| r["root_service_name"].as_str())
        .expect("a root service")
        .to_string();
    s.type_into(&s.find("#service"), &service);
    apply(&s);
    let q = query_bar(&s);
    assert!(
        q.contains(&format!("root_service_name:\"{service}\"")),
        "{q}"
    );
    let filtered = api_page(&app, &q, None).await;
    assert!(!ids(&filtered).is_empty());
    for r in filtered["results"].as_array().unwrap() {
        assert_eq!(r["root_service_name"], json!(service));
    }
    assert_eq!(page_ids(&s), ids(&filtered), "service filter");

    // A duration filter instead.
    s.type_into(&s.find("#service"), "");
    s.type_into(&s.find("#min"), "50");
    apply(&s);
    let q = query_bar(&s);
    assert!(
        q.contains("duration_ms:>=50") && !q.contains("root_service_name"),
        "{q}"
    );
    let slow = api_page(&app, &q, None).await;
    for r in slow["results"].as_array().unwrap() {
        assert!(r["duration_ms"].as_f64().unwrap() >= 50.0, "{r}");
    }
    assert_eq!(page_ids(&s), ids(&slow), "duration filter");

    // Sorting by duration, server-side over every matching trace.
    s.type_into(&s.find("#min"), "");
    apply(&s);
    let before = loaded(&s);
    s.click(&s.find("#traces th[data-sort=duration_ms]"));
    wait_list(&s, &before);
    let q = query_bar(&s);
    assert!(q.ends_with("sort:duration_ms:desc"), "{q}");
    let sorted = api_page(&app, &q, None).await;
    let durations: Vec<f64> = sorted["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["duration_ms"].as_f64().unwrap())
        .collect();
    assert!(durations.windows(2).all(|w| w[0] >= w[1]), "{durations:?}");
    let top = page_ids(&s);
    assert_eq!(top, ids(&sorted), "sorted by duration");
    assert!(
        s.js("return location.search;", vec![])
            .as_str()
            .unwrap()
            .contains("sort=duration_ms%3Adesc"),
        "the sort is in the URL"
    );

    // Next, then previous, returns the first page; the second is the API's next page.
    let before = loaded(&s);
    s.click(&s.find("#next"));
    wait_list(&s, &before);
    let second = api_page(&app, &q, sorted["pagination"]["next_cursor"].as_str()).await;
    assert_eq!(page_ids(&s), ids(&second), "second page");
    let before = loaded(&s);
    s.click(&s.find("#prev"));
    wait_list(&s, &before);
    assert_eq!(
        page_ids(&s),
        top,
        "next then previous is the first page again"
    );
    // And the browser's back button returns to the second page.
    let before = loaded(&s);
    s.back();
    wait_list(&s, &before);
    assert_eq!(
        page_ids(&s),
        ids(&second),
        "back returns to the second page"
    );

    s.goto(&format!("{}/?range=24h", svc.base));
    wait_list(&s, "");
    s.wait_for(
        "cards and the plot",
        "document.querySelectorAll('.card').length === 4 && document.getElementById('scatter-caption').textContent",
        WAIT,
    );
    s.screenshot(&screenshot_path("ui-traces-list.png"));

    // The server's error, marked at the token it names.
    let before = loaded(&s);
    s.type_into(
        &s.find("#query"),
        "in:otel_trace_summaries time:last_1h bogus_field:1",
    );
    s.click(&s.find("#query-form button"));
    wait_list(&s, &before);
    let marked = s.wait_for(
        "the error marker",
        "document.querySelector('#query-error:not([hidden]) mark')?.textContent",
        WAIT,
    );
    assert_eq!(marked, json!("bogus_field:1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_shows_one_row_per_span_and_the_details_of_a_span() {
    let _one = BROWSER.lock().await;
    let svc = service::start(None).await;
    let app = support::app(&svc.db, None);
    let pick_query =
        "in:otel_trace_summaries time:last_24h span_count:>=4 span_count:<=40 sort:span_count:desc";
    let pick = api_page(&app, pick_query, None).await;
    let id = ids(&pick)[0].clone();
    let spans = support::query(
        &app,
        json!({ "query": format!("in:traces trace_id:{id} sort:start_time_unix_nano:asc"), "limit": 500 }),
    )
    .await;
    let spans = spans.results().clone();
    let s = Session::open();

    // A hand-written query in the URL, as a shared link carries it.
    s.goto(&format!("{}/?q={}", svc.base, url_escape(pick_query)));
    wait_list(&s, "");
    assert_eq!(page_ids(&s), ids(&pick));
    s.click(&s.find(&format!("#traces tr[data-trace-id='{id}'] a")));
    s.wait_for(
        "the trace",
        &format!("document.body.dataset.traceLoaded === '{id}'"),
        WAIT,
    );
    let rows = s.js(
        "return [...document.querySelectorAll('#waterfall-rows .wf-row')].map(r => r.dataset.spanId);",
        vec![],
    );
    let mut shown: Vec<String> = serde_json::from_value(rows).unwrap();
    let mut expected: Vec<String> = spans
        .iter()
        .map(|r| r["span_id"].as_str().unwrap().to_string())
        .collect();
    shown.sort();
    expected.sort();
    assert_eq!(shown, expected, "one waterfall row per span");

    let with_attributes = spans
        .iter()
        .find(|r| r["attributes"].as_object().is_some_and(|a| !a.is_empty()))
        .expect("a span with attributes");
    let (key, value) = with_attributes["attributes"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .unwrap();
    let span_id = with_attributes["span_id"].as_str().unwrap();
    s.click(&s.find(&format!(
        "#waterfall-rows .wf-row[data-span-id='{span_id}']"
    )));
    let text = s.wait_for(
        "the span's attributes",
        "document.querySelector('#detail .attributes')?.innerText",
        WAIT,
    );
    let text = text.as_str().unwrap();
    let value = value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_string);
    assert!(
        text.contains(key.as_str()) && text.contains(&value),
        "{key}={value} in {text}"
    );
    s.screenshot(&screenshot_path("ui-trace-view.png"));

    // 10,000 spans: every one is a row of the tree, but only those in view are in the DOM.
    s.goto(&format!("{}/?view=trace&id={BIG_TRACE}", svc.base));
    s.wait_for(
        "the 10,000-span trace",
        &format!("document.body.dataset.traceLoaded === '{BIG_TRACE}'"),
        WAIT,
    );
    let counts = s.js(
        "const w = document.getElementById('waterfall-rows');
         return [Number(w.dataset.rowCount), w.children.length];",
        vec![],
    );
    assert_eq!(counts[0], json!(BIG_SPANS), "every span has a row");
    assert!(counts[1].as_u64().unwrap() < 200, "rendered rows: {counts}");
    // Pages of PageLimits::one_trace spans: two requests, the second from the cursor.
    assert_eq!(
        s.js(
            "return performance.getEntriesByType('resource')
               .filter((e) => new URL(e.name).pathname === '/api/query').length;",
            vec![]
        ),
        json!(BIG_SPANS.div_ceil(srql_plan::PageLimits::default().one_trace as usize))
    );
    s.js(
        "const s = document.getElementById('waterfall-scroll'); s.scrollTop = s.scrollHeight;",
        vec![],
    );
    s.wait_for(
        "the last row after scrolling to the end",
        &format!(
            "[...document.querySelectorAll('#waterfall-rows .wf-row')].some(r => r.style.top === '{}px')",
            (BIG_SPANS - 1) * 24
        ),
        WAIT,
    );
    // The orphan is shown, marked, as a root of its own.
    assert_eq!(
        s.js(
            "return [...document.querySelectorAll('.wf-flag')].some(f => f.textContent === 'parent missing');",
            vec![]
        ),
        json!(true)
    );
    // Collapsing the root leaves the two roots: it and the orphan.
    s.js(
        "const s = document.getElementById('waterfall-scroll'); s.scrollTop = 0; s.dispatchEvent(new Event('scroll'));",
        vec![],
    );
    s.wait_for(
        "the first row",
        "document.querySelector('#waterfall-rows .wf-row[data-index=\"0\"] button.toggle')",
        WAIT,
    );
    s.click(&s.find("#waterfall-rows .wf-row[data-index='0'] button.toggle"));
    s.wait_for(
        "the collapsed tree",
        "document.getElementById('waterfall-rows').dataset.rowCount === '2'",
        WAIT,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_name_made_of_markup_is_shown_as_text_and_runs_nothing() {
    let _one = BROWSER.lock().await;
    let svc = service::start(None).await;
    let s = Session::open();
    let op: String = url_escape(HOSTILE_NAME);
    s.goto(&format!("{}/?range=24h&op={op}", svc.base));
    wait_list(&s, "");
    assert_eq!(page_ids(&s), vec![HOSTILE_TRACE.to_string()]);
    assert_eq!(
        s.js(
            "return document.querySelector('#traces tbody td.op').textContent;",
            vec![]
        ),
        json!(HOSTILE_NAME)
    );
    s.click(&s.find(&format!("#traces tr[data-trace-id='{HOSTILE_TRACE}'] a")));
    s.wait_for(
        "the trace",
        &format!("document.body.dataset.traceLoaded === '{HOSTILE_TRACE}'"),
        WAIT,
    );
    s.click(&s.find("#waterfall-rows .wf-row[data-index='0']"));
    let note = s.wait_for(
        "the detail panel",
        "document.querySelector('#detail .attributes td')?.textContent",
        WAIT,
    );
    assert_eq!(note, json!("<script>window.pwned = 1</script>"));
    let names = s.js(
        "return [document.querySelector('.wf-name').textContent, document.querySelector('.detail-name').textContent];",
        vec![],
    );
    assert_eq!(names, json!([HOSTILE_NAME, HOSTILE_NAME]));
    let ran = s.js(
        "return { imgs: document.querySelectorAll('img').length, scripts: document.querySelectorAll('script').length, pwned: window.pwned ?? null };",
        vec![],
    );
    assert_eq!(ran, json!({ "imgs": 0, "scripts": 1, "pwned": null }));
    assert_eq!(s.alert_text(), None, "no alert ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_api_key_the_page_asks_for_it_once_and_refuses_a_wrong_one() {
    let _one = BROWSER.lock().await;
    let svc = service::start(Some("s3cret-key")).await;
    let s = Session::open();
    s.goto(&format!("{}/?range=24h", svc.base));
    let dialog_open = "document.getElementById('key-dialog').open";
    s.wait_for("the key prompt", dialog_open, WAIT);

    s.type_into(&s.find("#key-input"), "wrong-key");
    s.click(&s.find("#key-form button"));
    let refused = s.wait_for(
        "the refusal",
        &format!("{dialog_open} && !document.getElementById('key-error').hidden && document.getElementById('key-error').textContent"),
        WAIT,
    );
    assert!(refused.as_str().unwrap().contains("refused"), "{refused}");

    s.type_into(&s.find("#key-input"), "s3cret-key");
    s.click(&s.find("#key-form button"));
    wait_list(&s, "");
    assert_eq!(page_ids(&s).len(), 50);
    assert_eq!(
        s.js(&format!("return {dialog_open};"), vec![]),
        json!(false)
    );

    // Once per session: a new page load asks no more.
    s.goto(&format!("{}/?range=24h&status=errors", svc.base));
    wait_list(&s, "");
    assert_eq!(
        s.js(&format!("return {dialog_open};"), vec![]),
        json!(false)
    );
    assert!(!page_ids(&s).is_empty());
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freshness_warns_past_two_refresh_intervals_and_live_mode_refreshes_in_place() {
    let _one = BROWSER.lock().await;
    // A view, whose age is what the warning is about.
    let svc = service::start_in(None, store::summaries::SummaryMode::MaterializedView).await;
    // A one-second period, so the view built at start is soon older than two of them.
    let client = svc.db.client().await;
    store::summaries::set_setting(&client, store::summaries::keys::REFRESH_INTERVAL_SECS, "1")
        .await
        .expect("setting");
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let s = Session::open();
    s.goto(&format!("{}/?range=24h&live=1", svc.base));
    wait_list(&s, "");
    let freshness = s.wait_for(
        "the stale warning",
        "document.querySelector('#freshness.stale')?.textContent",
        WAIT,
    );
    let text = freshness.as_str().unwrap();
    assert!(
        text.contains("materialized view") && text.contains("older than two refresh intervals"),
        "{text}"
    );
    let url = s.js("return location.href;", vec![]);
    let first = page_ids(&s);
    // Live mode reloads the first page by itself, in place.
    let before = loaded(&s);
    wait_list(&s, &before);
    assert_eq!(s.js("return location.href;", vec![]), url);
    assert_eq!(page_ids(&s), first);
}
