//! The HTTP API: routes, request parsing, responses.

use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Request as HttpRequest, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};
use srql_plan::{Catalog, Direction, PageRequest, Plan, SourcePreference, SummaryState};
use store::db::{CancelOnDrop, Fault};
use store::DbError;

use crate::error::ApiError;
use crate::lanes::Lane;
use crate::state::{AppState, DEADLINE_GRACE};

/// `/healthz` and `/metrics` give up on the database after this, so they answer within a
/// second whatever the database does.
const PROBE_DEADLINE: Duration = Duration::from_millis(900);

/// The session settings every API query runs with, sent with it in one round trip; per
/// query because the pool is shared with statements that may not be bounded the same way.
///
/// JIT off: PostgreSQL compiles a query whose estimated cost passes `jit_above_cost`, and
/// an on-the-fly aggregation at L (cost ~700k, with inlining and optimization) spent
/// 1.0-1.2 s compiling before a 2 s run; no API query runs long enough to earn that back
/// (BENCHMARKS.md, "Attribute conditions on the fly"). The incremental drain turns it off
/// for the same reason.
///
/// No parallel workers on the summaries: a first page there does a few milliseconds of
/// work, and starting two workers took 20-40 ms on a busy 2-core machine (at 10M spans
/// the common-attribute page ran in 50 ms with workers against 0.4 ms without). Ten times
/// the default `parallel_setup_cost` was not enough: when ANALYZE's sample overestimated
/// a rare attribute value, the planner still gave its page two workers, 96-114 ms
/// against 16-25 ms. Spans and on-the-fly aggregations keep the default: they read a
/// range's spans, where workers pay.
///
/// No hash joins for a page of summaries: a page stops at its `LIMIT`, which a nested
/// loop does and a hash join, reading its whole inner side first, does not. When
/// ANALYZE's sample makes a rare attribute value look a little commoner, the planner
/// hashed its matching spans and then read every summary of the range to probe them
/// (at 10M spans 100-130 ms, against 13 ms for the nested loop from the matching spans to
/// their summaries), about one ANALYZE in five. Aggregates (`stats:`) read the whole
/// range anyway and keep them.
fn session_settings(plan: &Plan, timeout: Duration) -> String {
    let summaries = matches!(plan.source, srql_plan::Source::Summaries(_));
    let workers = if summaries { "0" } else { "DEFAULT" };
    let page = matches!(plan.output, srql_plan::Output::Rows { .. });
    let hash_joins = if summaries && page { "off" } else { "DEFAULT" };
    format!(
        "SET statement_timeout = {}; SET jit = off; SET max_parallel_workers_per_gather = {workers}; \
         SET enable_hashjoin = {hash_joins}",
        timeout.as_millis().max(1)
    )
}

pub fn app(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    let protected = Router::new()
        .route("/api/query", post(query))
        .route("/translate", post(translate))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_api_key,
        ));
    Router::new()
        .merge(protected)
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(crate::ui::router())
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    query: String,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    direction: Option<String>,
    /// `auto` (default), `summaries` or `on_the_fly`: pin the summary path for debugging
    /// and benchmarks, when the service allows it (`allow_source_override`).
    #[serde(default)]
    source: Option<String>,
    /// Upstream's read mode. Every answer here reads committed rows once, so any value is
    /// accepted and reported as ignored (`x-srql-ignored-keys`), never silently.
    #[serde(default)]
    mode: Option<String>,
}

fn body(
    payload: Result<Json<QueryBody>, JsonRejection>,
    max: usize,
) -> Result<QueryBody, ApiError> {
    match payload {
        Ok(Json(b)) => Ok(b),
        Err(JsonRejection::BytesRejection(_)) => Err(ApiError::TooLarge(max)),
        Err(e) => Err(ApiError::BadRequest(format!(
            "invalid request body: {}",
            e.body_text()
        ))),
    }
}

/// The plan and the catalog it was made with. Holds no connection when it returns: the
/// catalog read takes and releases its own.
async fn compile(state: &AppState, b: &QueryBody) -> Result<(Plan, Catalog), ApiError> {
    let direction = match b.direction.as_deref() {
        None => None,
        Some("next") => Some(Direction::Next),
        Some("prev") => Some(Direction::Prev),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "`direction` must be `next` or `prev`, found `{other}`"
            )))
        }
    };
    let source = match b.source.as_deref() {
        None | Some("auto") => SourcePreference::Auto,
        Some("summaries") => SourcePreference::Summaries,
        Some("on_the_fly") => SourcePreference::OnTheFly,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "`source` must be `auto`, `summaries` or `on_the_fly`, found `{other}`"
            )))
        }
    };
    if source != SourcePreference::Auto && !state.config.allow_source_override {
        return Err(ApiError::Forbidden(
            "`source` other than `auto` is disabled on this service: enable it with \
             `--allow-source-override` (SRQL_ALLOW_SOURCE_OVERRIDE=true)"
                .to_string(),
        ));
    }
    let catalog = state.catalog().await?;
    let page = PageRequest {
        limit: b.limit,
        cursor: b.cursor.as_deref(),
        direction,
        limits: state.config.page_limits,
    };
    let mut plan = srql_plan::compile(
        &b.query,
        &catalog,
        &page,
        &srql_lang::Limits::default(),
        Utc::now(),
    )?
    .pin_source(source)?;
    if b.mode.is_some() && !plan.ignored_keys.iter().any(|k| k == "mode") {
        plan.ignored_keys.push("mode".into());
    }
    Ok((plan, catalog))
}

/// Runs `plan` in its lane under the statement timeout. If the request is dropped (the
/// client went away) or the database does not answer by the deadline, the statement is
/// cancelled in PostgreSQL (`CancelOnDrop`).
async fn run_plan(state: &AppState, plan: &Plan) -> Result<store::exec::QueryResult, ApiError> {
    let _slot = state
        .lanes
        .slot(Lane::for_plan(plan), state.config.lane_wait)
        .await?;
    let timeout = state.config.query_timeout;
    let deadline = timeout + DEADLINE_GRACE;
    let run = async {
        let conn = CancelOnDrop::new(state.pool.get().await.map_err(DbError::from)?);
        let set = session_settings(plan, timeout);
        let (set, rows) = tokio::join!(
            conn.client().batch_execute(&set),
            store::exec::run(conn.client(), plan)
        );
        // Both finished: nothing runs on the session any more.
        conn.done();
        set.map_err(DbError::from)?;
        rows
    };
    match tokio::time::timeout(deadline, run).await {
        Err(_) => Err(ApiError::Db(DbError::Unavailable(format!(
            "no answer from the database within {}s",
            deadline.as_secs_f64()
        )))),
        Ok(Err(e)) if e.fault() == Fault::StatementTimeout => Err(ApiError::QueryTimeout(timeout)),
        Ok(r) => Ok(r?),
    }
}

/// Which path answered and how fresh the summaries were, as response headers.
fn source_headers(plan: &Plan, catalog_state: &SummaryState) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "x-srql-source",
        HeaderValue::from_static(plan.source.label()),
    );
    // Keys are from a fixed list (srql_lang::IGNORED_KEYS), so always a valid header.
    if !plan.ignored_keys.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&plan.ignored_keys.join(",")) {
            h.insert("x-srql-ignored-keys", v);
        }
    }
    if let SummaryState::Ready { as_of, .. } = catalog_state {
        if let Ok(v) = HeaderValue::from_str(&as_of.to_rfc3339()) {
            h.insert("x-srql-summaries-as-of", v);
        }
        let age = (Utc::now() - *as_of).num_milliseconds() as f64 / 1000.0;
        if let Ok(v) = HeaderValue::from_str(&format!("{age:.3}")) {
            h.insert("x-srql-summaries-age-seconds", v);
        }
    }
    h
}

async fn query(
    State(state): State<AppState>,
    payload: Result<Json<QueryBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let result = async {
        let b = body(payload, state.config.max_body_bytes)?;
        let (plan, catalog) = compile(&state, &b).await?;
        let result = run_plan(&state, &plan).await?;
        state.metrics.count_source(plan.source.label());
        let mut headers = source_headers(&plan, &catalog.summaries);
        if result.groups_truncated {
            headers.insert("x-srql-groups-truncated", HeaderValue::from_static("true"));
        }
        Ok::<_, ApiError>((headers, Json(result)).into_response())
    }
    .await;
    count_errors(&state, &result);
    result
}

fn count_errors(state: &AppState, r: &Result<Response, ApiError>) {
    use std::sync::atomic::Ordering::Relaxed;
    let m = &state.metrics;
    let counter = match r {
        Ok(_) => return,
        Err(ApiError::Busy(_)) => &m.unavailable,
        Err(ApiError::QueryTimeout(_)) => &m.timeouts,
        Err(ApiError::Db(e)) => match e.fault() {
            Fault::Unavailable => &m.unavailable,
            Fault::StatementTimeout => &m.timeouts,
            Fault::Other => &m.server_errors,
        },
        Err(_) => &m.bad_requests,
    };
    counter.fetch_add(1, Relaxed);
}

async fn translate(
    State(state): State<AppState>,
    payload: Result<Json<QueryBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let result = async {
        let b = body(payload, state.config.max_body_bytes)?;
        let (plan, catalog) = compile(&state, &b).await?;
        let mut body = srql_plan::translation(&plan, b.cursor.as_deref());
        body["source"] = json!(plan.source.label());
        body["reason"] = json!(plan.reason.to_string());
        body["summaries"] = summaries_json(&catalog.summaries);
        Ok::<_, ApiError>((source_headers(&plan, &catalog.summaries), Json(body)).into_response())
    }
    .await;
    count_errors(&state, &result);
    result
}

fn summaries_json(s: &SummaryState) -> Value {
    match s {
        SummaryState::Missing => json!({ "state": "missing" }),
        SummaryState::Unpopulated { kind } => json!({ "state": "unpopulated", "kind": kind }),
        SummaryState::Ready {
            kind,
            covers_from,
            as_of,
        } => json!({
            "state": "ready",
            "kind": kind,
            "covers_from": covers_from.to_rfc3339(),
            "as_of": as_of.to_rfc3339(),
            "age_seconds": (Utc::now() - *as_of).num_milliseconds() as f64 / 1000.0,
        }),
    }
}

async fn healthz(State(state): State<AppState>) -> Response {
    let check = async {
        let _slot = state.lanes.slot(Lane::Service, PROBE_DEADLINE).await?;
        let conn = CancelOnDrop::new(state.pool.get().await.map_err(DbError::from)?);
        let health = health(conn.client()).await;
        conn.done();
        Ok::<_, ApiError>(health?)
    };
    match tokio::time::timeout(PROBE_DEADLINE, check).await {
        Ok(Ok(v)) => Json(v).into_response(),
        failed => {
            // The cause goes to the log; callers learn only that the database is not usable.
            match failed {
                Ok(Err(e)) => tracing::warn!(error = %e, "health check failed"),
                _ => tracing::warn!(
                    seconds = PROBE_DEADLINE.as_secs_f64(),
                    "health check: no answer from the database in time"
                ),
            }
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, HeaderValue::from_static("5"))],
                Json(json!({
                    "status": "unavailable",
                    "database": "not answering: see the service log",
                })),
            )
                .into_response()
        }
    }
}

async fn health(client: &tokio_postgres::Client) -> Result<Value, DbError> {
    let catalog = store::summaries::catalog(client).await?;
    let (last_ok, last) = store::summaries::last_runs(client).await?;
    let scheduler =
        store::summaries::get_setting(client, store::summaries::keys::REFRESH_SCHEDULER).await?;
    let freshness = store::summaries::freshness(client).await?;
    // The period after which summaries are due again: the UI warns past two of them.
    let interval = if freshness.mode == store::summaries::SummaryMode::Incremental {
        store::summaries::stored_maintenance(client)
            .await?
            .drain_interval
    } else {
        store::summaries::stored_config(client)
            .await?
            .refresh_interval
    };
    let sealing = store::sealing::status(client).await?;
    Ok(json!({
        "status": "ok",
        "database": "ok",
        "summaries": summaries_json(&catalog.summaries),
        "freshness": freshness,
        "sealing": sealing,
        "refresh": {
            "scheduler": scheduler,
            "interval_seconds": interval.num_milliseconds() as f64 / 1000.0,
            "last_success": last_ok,
            "last_run": last,
            "last_success_duration_seconds": last_ok.as_ref().and_then(|r| r.duration()).map(|d| d.num_milliseconds() as f64 / 1000.0),
        },
    }))
}

async fn metrics(State(state): State<AppState>) -> Response {
    // The counters are always available; refresh facts only while the database answers.
    let facts = async {
        let _slot = state.lanes.slot(Lane::Service, PROBE_DEADLINE).await.ok()?;
        let conn = CancelOnDrop::new(state.pool.get().await.ok()?);
        let facts = refresh_facts(conn.client()).await.ok();
        let freshness = store::summaries::freshness(conn.client()).await.ok();
        let sealing = store::sealing::status(conn.client()).await.ok();
        conn.done();
        Some((facts, freshness, sealing))
    };
    let (facts, freshness, sealing) = tokio::time::timeout(PROBE_DEADLINE, facts)
        .await
        .ok()
        .flatten()
        .unwrap_or((None, None, None));
    let mut body = crate::metrics::render(&state.metrics, facts.as_ref(), Utc::now());
    if let Some(f) = freshness.filter(|f| f.mode == store::summaries::SummaryMode::Incremental) {
        crate::metrics::render_freshness(&mut body, &f);
    }
    if let Some(s) = &sealing {
        crate::metrics::render_sealing(&mut body, s);
    }
    if let Some(probe) = &state.ingest {
        crate::metrics::render_ingest(&mut body, &probe());
    }
    ([("content-type", "text/plain; version=0.0.4")], body).into_response()
}

async fn refresh_facts(
    client: &tokio_postgres::Client,
) -> Result<crate::metrics::RefreshFacts, store::DbError> {
    let (last_ok, _) = store::summaries::last_runs(client).await?;
    let outcomes = client
        .query(
            "SELECT outcome, count(*) FROM srql_refresh_runs GROUP BY outcome ORDER BY outcome",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok(crate::metrics::RefreshFacts { last_ok, outcomes })
}

async fn require_api_key(
    State(state): State<AppState>,
    req: HttpRequest,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(expected) = &state.config.api_key {
        let given = req
            .headers()
            .get("x-api-key")
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !constant_time_eq(given, expected.as_bytes()) {
            return Err(ApiError::Unauthorized);
        }
    }
    Ok(next.run(req).await)
}

/// Comparison whose time does not depend on where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use srql_plan::{Source, SummaryKind};

    fn plan(text: &str, summaries: bool) -> Plan {
        let now = chrono::Utc::now();
        let catalog = if summaries {
            Catalog {
                summaries: SummaryState::Ready {
                    kind: SummaryKind::Table,
                    covers_from: now - chrono::Duration::days(7),
                    as_of: now,
                },
                ..Catalog::without_summaries()
            }
        } else {
            Catalog::without_summaries()
        };
        let limits = srql_lang::Limits::default();
        srql_plan::compile(text, &catalog, &PageRequest::default(), &limits, now).unwrap()
    }

    #[test]
    fn summary_pages_run_without_workers_or_hash_joins_and_every_query_without_jit() {
        let t = Duration::from_secs(5);
        let page = "in:otel_trace_summaries time:last_24h span.attributes.k:v";
        let stats = r#"in:otel_trace_summaries time:last_24h stats:"count() as n""#;
        let summary_page = plan(page, true);
        assert!(matches!(summary_page.source, Source::Summaries(_)));
        let s = session_settings(&summary_page, t);
        assert!(s.contains("max_parallel_workers_per_gather = 0"), "{s}");
        assert!(s.contains("enable_hashjoin = off"), "{s}");
        let s = session_settings(&plan(stats, true), t);
        assert!(s.contains("enable_hashjoin = DEFAULT"), "an aggregate: {s}");
        for other in [plan(page, false), plan("in:traces time:last_1h", true)] {
            assert!(!matches!(other.source, Source::Summaries(_)));
            let s = session_settings(&other, t);
            assert!(
                s.contains("max_parallel_workers_per_gather = DEFAULT"),
                "{s}"
            );
            assert!(s.contains("enable_hashjoin = DEFAULT"), "{s}");
        }
        for p in [
            plan(page, true),
            plan(stats, false),
            plan("in:traces", true),
        ] {
            let s = session_settings(&p, t);
            assert!(
                s.contains("SET jit = off") && s.contains("statement_timeout = 5000"),
                "{s}"
            );
        }
    }
}
