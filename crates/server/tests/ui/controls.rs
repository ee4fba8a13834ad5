//! The list's other controls (the scatter plot, a custom range, the pickers, a span
//! attribute condition) and the cards, each checked against the API's answer.

use serde_json::{json, Value};

use super::service::{self, CLOCKLESS_TRACE, ROOTLESS_TRACE};
use super::{api_page, apply, ids, loaded, page_ids, query_bar, wait_list, Session, BROWSER, WAIT};
use crate::support;

/// Every row of `q`, following the cursors.
async fn all_ids(app: &axum::Router, q: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = api_page(app, q, cursor.as_deref()).await;
        out.extend(ids(&page));
        match page["pagination"]["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

fn card(s: &Session, class: &str) -> u64 {
    let text = s.wait_for(
        "the card",
        &format!("document.querySelector('.card.card-{class} .card-value')?.textContent"),
        WAIT,
    );
    text.as_str()
        .unwrap()
        .replace(',', "")
        .parse()
        .unwrap_or_else(|e| panic!("card {class}: {text}: {e}"))
}

async fn group_values(app: &axum::Router, field: &str) -> Vec<String> {
    let r = support::query(
        app,
        json!({ "query": format!("in:otel_trace_summaries time:last_24h stats:\"count() as traces by {field}\""), "limit": 500 }),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let mut v: Vec<String> = r
        .results()
        .iter()
        .filter_map(|row| row[field].as_str().map(str::to_string))
        .collect();
    v.sort();
    v
}

fn options(s: &Session, list: &str) -> Vec<String> {
    let v = s.wait_for(
        "the picker's options",
        &format!("document.querySelectorAll('#{list} option').length && [...document.querySelectorAll('#{list} option')].map(o => o.value)"),
        WAIT,
    );
    let mut v: Vec<String> = serde_json::from_value(v).unwrap();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pickers_custom_range_attribute_condition_and_the_plot_follow_the_api() {
    let _one = BROWSER.lock().await;
    let svc = service::start(None).await;
    let app = support::app(&svc.db, None);
    let s = Session::open();
    s.goto(&format!("{}/?range=24h", svc.base));
    wait_list(&s, "");
    let day = page_ids(&s);

    // The pickers offer the group-by lists; picking an operation filters by it.
    let services = group_values(&app, "root_service_name").await;
    assert!(services.len() > 3, "{services:?}");
    assert_eq!(options(&s, "services"), services);
    let operations = group_values(&app, "root_span_name").await;
    assert_eq!(options(&s, "operations"), operations);
    let op = operations
        .iter()
        .find(|o| o.starts_with("GET "))
        .expect("a GET operation")
        .clone();
    s.type_into(&s.find("#operation"), &op);
    apply(&s);
    let q = query_bar(&s);
    assert!(q.contains(&format!("root_span_name:\"{op}\"")), "{q}");
    let picked = api_page(&app, &q, None).await;
    assert!(!ids(&picked).is_empty());
    for r in picked["results"].as_array().unwrap() {
        assert_eq!(r["root_span_name"], json!(op));
    }
    assert_eq!(page_ids(&s), ids(&picked), "operation picked");
    s.type_into(&s.find("#operation"), "");

    // A custom range, six to two hours ago in the browser's own time zone.
    s.click(&s.find("#range option[value=custom]"));
    s.wait_for(
        "the from/to inputs",
        "!document.getElementById('custom-range').hidden",
        WAIT,
    );
    let bounds = s.js(
        "const local = (ms) => new Date(ms - new Date(ms).getTimezoneOffset() * 60000).toISOString().slice(0, 19);
         const now = Date.now();
         document.getElementById('from').value = local(now - 6 * 3600e3);
         document.getElementById('to').value = local(now - 2 * 3600e3);
         return [now - 6 * 3600e3, now - 2 * 3600e3];",
        vec![],
    );
    apply(&s);
    let q = query_bar(&s);
    assert!(q.contains("time:[") && !q.contains("last_24h"), "{q}");
    let ranged = api_page(&app, &q, None).await;
    assert!(!ids(&ranged).is_empty(), "{q}");
    let (from, to) = (bounds[0].as_f64().unwrap(), bounds[1].as_f64().unwrap());
    for r in ranged["results"].as_array().unwrap() {
        let at = chrono::DateTime::parse_from_rfc3339(r["timestamp"].as_str().unwrap())
            .unwrap()
            .timestamp_millis() as f64;
        // The inputs keep whole seconds.
        assert!(at >= from - 1000.0 && at <= to + 1000.0, "{r}");
    }
    assert_eq!(page_ids(&s), ids(&ranged), "custom range");
    assert_ne!(page_ids(&s), day, "the range changed the rows");

    // A span attribute condition: traces with a span carrying key=value.
    s.click(&s.find("#range option[value='24h']"));
    s.wait_for(
        "the day's list",
        "document.getElementById('query').value.includes('last_24h')",
        WAIT,
    );
    let spans = support::query(
        &app,
        json!({ "query": "in:traces time:last_24h", "limit": 100 }),
    )
    .await;
    let (key, value) = spans
        .results()
        .iter()
        .flat_map(|r| r["attributes"].as_object().cloned().unwrap_or_default())
        .find_map(|(k, v)| {
            let ok = k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            v.as_str()
                .filter(|v| ok && !v.is_empty())
                .map(|v| (k.clone(), v.to_string()))
        })
        .unwrap_or_else(|| panic!("a string attribute in {:?}", spans.results().first()));
    s.type_into(&s.find("#attr"), &format!("{key}={value}"));
    apply(&s);
    let q = query_bar(&s);
    assert!(
        q.contains(&format!("span.attributes.{key}:\"{value}\"")),
        "{q}"
    );
    let matching = api_page(&app, &q, None).await;
    let first = ids(&matching);
    assert!(!first.is_empty(), "{q}");
    assert_eq!(page_ids(&s), first, "span attribute condition");
    let trace = support::query(
        &app,
        json!({ "query": format!("in:traces trace_id:\"{}\"", first[0]), "limit": 500 }),
    )
    .await;
    assert!(
        trace
            .results()
            .iter()
            .any(|span| span["attributes"][&key] == json!(value)),
        "{} has a span with {key}={value}",
        first[0]
    );

    // Clicking a dot of the plot opens that trace: a dot with no other near it, clicked
    // with the mouse where it is drawn.
    s.type_into(&s.find("#attr"), "");
    apply(&s);
    let dot = s.js(
        "return import('/ui/scatter.js').then(({ plotted }) => {
           const c = document.getElementById('scatter');
           const ps = plotted(c);
           const lone = ps.find((p) => ps.every((o) => o === p || Math.hypot(o.px - p.px, o.py - p.py) > 8));
           return lone && { id: lone.row.trace_id, dx: Math.round(lone.px - c.clientWidth / 2), dy: Math.round(lone.py - c.clientHeight / 2) };
         });",
        vec![],
    );
    let id = dot["id"].as_str().expect("a dot by itself").to_string();
    s.click_at(
        &s.find("#scatter"),
        dot["dx"].as_i64().unwrap(),
        dot["dy"].as_i64().unwrap(),
    );
    s.wait_for(
        "the trace of the dot",
        &format!("document.body.dataset.traceLoaded === '{id}'"),
        WAIT,
    );
    assert!(s
        .js("return location.search;", vec![])
        .as_str()
        .unwrap()
        .contains(&id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_count_the_lists_traces_and_odd_traces_are_shown_sanely() {
    let _one = BROWSER.lock().await;
    let svc = service::start(None).await;
    let app = support::app(&svc.db, None);
    let s = Session::open();

    // The cards count what the list pages through, rootless traces included.
    s.goto(&format!("{}/?range=24h", svc.base));
    wait_list(&s, "");
    let q = query_bar(&s);
    let listed = all_ids(&app, &q).await;
    assert!(listed.contains(&ROOTLESS_TRACE.to_string()));
    assert_eq!(card(&s, "traces"), listed.len() as u64, "traces card");
    let roots = support::query(
        &app,
        json!({ "query": "in:otel_traces time:last_24h rollup_stats:summary" }),
    )
    .await;
    let roots = roots.results()[0]["total"].as_u64().unwrap();
    assert!(
        roots < listed.len() as u64,
        "the rollup counts {roots} root spans, fewer than the list's traces: the case the cards must not show"
    );
    let label = s.js(
        "return document.querySelector('.card.card-avg .card-label').textContent;",
        vec![],
    );
    assert!(
        label.as_str().unwrap().contains("root spans in range"),
        "{label}"
    );
    let before = loaded(&s);
    s.click(&s.find("#status option[value=errors]"));
    wait_list(&s, &before);
    let errors = all_ids(&app, &query_bar(&s)).await;
    assert!(!errors.is_empty());
    assert_eq!(card(&s, "traces"), errors.len() as u64, "with errors only");
    assert_eq!(card(&s, "errors"), errors.len() as u64);

    // A trace with a span whose clock was not set: no absurd date, duration or bar, and
    // no dot stretching the plot over decades.
    let clockless = format!(
        "in:otel_trace_summaries time:last_24h trace_id:\"{CLOCKLESS_TRACE}\" sort:timestamp:desc"
    );
    s.goto(&format!(
        "{}/?q={}",
        svc.base,
        super::url_escape(&clockless)
    ));
    wait_list(&s, "");
    assert_eq!(page_ids(&s), vec![CLOCKLESS_TRACE.to_string()]);
    let cells = s.js(
        "const r = document.querySelector('#traces tbody tr');
         return [r.querySelector('td.start').textContent, r.querySelector('.dur-text').textContent, r.querySelector('.bar').style.width];",
        vec![],
    );
    assert_eq!(cells, json!(["clock not set", "unknown", "0%"]));
    let caption = s.wait_for(
        "the plot's caption",
        "document.getElementById('scatter-caption').textContent",
        WAIT,
    );
    assert!(
        caption.as_str().unwrap().contains("1 left out"),
        "{caption}"
    );
    s.click(&s.find(&format!("#traces tr[data-trace-id='{CLOCKLESS_TRACE}'] a")));
    s.wait_for(
        "the trace",
        &format!("document.body.dataset.traceLoaded === '{CLOCKLESS_TRACE}'"),
        WAIT,
    );
    let view = s.js(
        "return {
           rows: document.querySelectorAll('#waterfall-rows .wf-row').length,
           unset: [...document.querySelectorAll('.wf-flag')].filter(f => f.textContent === 'clock not set').length,
           end: [...document.querySelectorAll('#axis .tick')].pop().textContent,
           duration: [...document.querySelectorAll('.fact')].find(f => f.firstChild.textContent === 'duration').lastChild.textContent,
         };",
        vec![],
    );
    assert_eq!(
        view,
        json!({ "rows": 3, "unset": 1, "end": "30.0 ms", "duration": "30.0 ms" })
    );

    // A trace whose root has not arrived: listed, and each span a row of the waterfall.
    s.goto(&format!("{}/?view=trace&id={ROOTLESS_TRACE}", svc.base));
    s.wait_for(
        "the rootless trace",
        &format!("document.body.dataset.traceLoaded === '{ROOTLESS_TRACE}'"),
        WAIT,
    );
    let view: Value = s.js(
        "return {
           header: document.querySelector('#trace-header h1').textContent,
           spans: [...document.querySelectorAll('#waterfall-rows .wf-row')].map(r => r.dataset.spanId).sort(),
           orphans: [...document.querySelectorAll('.wf-flag')].filter(f => f.textContent === 'parent missing').length,
         };",
        vec![],
    );
    assert_eq!(
        view,
        json!({ "header": "root span not arrived yet", "spans": ["b2", "b3"], "orphans": 2 })
    );
}
