//! The HTTP API: routes, request parsing, responses.

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Request as HttpRequest, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};
use srql_plan::{Direction, Plan, SourcePreference, SummaryState};

use crate::error::ApiError;
use crate::state::AppState;

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
    /// and benchmarks.
    #[serde(default)]
    source: Option<String>,
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

async fn compile(state: &AppState, b: &QueryBody) -> Result<Plan, ApiError> {
    let direction = match b.direction.as_deref() {
        None | Some("next") => Direction::Next,
        Some("prev") => Direction::Prev,
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
    let catalog = state.catalog().await?;
    let req = srql_plan::Request {
        query: &b.query,
        limit: b.limit,
        cursor: b.cursor.as_deref(),
        direction,
        source,
    };
    Ok(srql_plan::compile(
        &req,
        &catalog,
        &srql_lang::Limits::default(),
        Utc::now(),
    )?)
}

/// Which path answered and how fresh the summaries were, as response headers.
fn source_headers(plan: &Plan, catalog_state: &SummaryState) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "x-srql-source",
        HeaderValue::from_static(plan.source.label()),
    );
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
        let plan = compile(&state, &b).await?;
        let client = state.pool.get().await.map_err(store::DbError::from)?;
        let result = store::exec::run(&**client, &plan).await?;
        state.metrics.count_source(plan.source.label());
        let catalog = state.catalog().await?;
        Ok::<_, ApiError>((source_headers(&plan, &catalog.summaries), Json(result)).into_response())
    }
    .await;
    count_errors(&state, &result);
    result
}

fn count_errors(state: &AppState, r: &Result<Response, ApiError>) {
    use std::sync::atomic::Ordering::Relaxed;
    match r {
        Err(ApiError::Db(_)) => state.metrics.server_errors.fetch_add(1, Relaxed),
        Err(_) => state.metrics.bad_requests.fetch_add(1, Relaxed),
        Ok(_) => 0,
    };
}

async fn translate(
    State(state): State<AppState>,
    payload: Result<Json<QueryBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let result = async {
        let b = body(payload, state.config.max_body_bytes)?;
        let plan = compile(&state, &b).await?;
        let catalog = state.catalog().await?;
        let limit = match &plan.output {
            srql_plan::Output::Rows { page, .. } => Some(page.limit),
            srql_plan::Output::Aggregate { .. } => None,
        };
        let body = json!({
            "sql": plan.sql.sql,
            "params": plan.sql.params,
            "pagination": { "limit": limit },
            "source": plan.source.label(),
            "reason": plan.reason,
            "summaries": summaries_json(&catalog.summaries),
        });
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
    let client = match state.pool.get().await {
        Ok(c) => c,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "database": format!("unreachable: {e}") })),
            )
                .into_response()
        }
    };
    let health = async {
        let catalog = store::summaries::catalog(&client, 0, 0).await?;
        let (last_ok, last) = store::summaries::last_runs(&client).await?;
        let scheduler = store::summaries::get_setting(&client, store::summaries::keys::REFRESH_SCHEDULER).await?;
        Ok::<_, store::DbError>(json!({
            "status": "ok",
            "database": "ok",
            "summaries": summaries_json(&catalog.summaries),
            "refresh": {
                "scheduler": scheduler,
                "last_success": last_ok,
                "last_run": last,
                "last_success_duration_seconds": last_ok.as_ref().and_then(|r| r.duration()).map(|d| d.num_milliseconds() as f64 / 1000.0),
            },
        }))
    }
    .await;
    match health {
        Ok(v) => Json(v).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "degraded", "database": format!("error: {e}") })),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut out = String::new();
    out.push_str("# HELP srql_queries_total Queries answered, by the path that answered them.\n# TYPE srql_queries_total counter\n");
    for (source, n) in state.metrics.queries() {
        out.push_str(&format!("srql_queries_total{{source=\"{source}\"}} {n}\n"));
    }
    use std::sync::atomic::Ordering::Relaxed;
    out.push_str("# HELP srql_query_errors_total Failed queries by kind.\n# TYPE srql_query_errors_total counter\n");
    out.push_str(&format!(
        "srql_query_errors_total{{kind=\"bad_request\"}} {}\nsrql_query_errors_total{{kind=\"server\"}} {}\n",
        state.metrics.bad_requests.load(Relaxed),
        state.metrics.server_errors.load(Relaxed)
    ));
    if let Ok(client) = state.pool.get().await {
        if let Ok((Some(run), _)) = store::summaries::last_runs(&client).await {
            {
                let age = run
                    .snapshot_at
                    .map(|s| (Utc::now() - s).num_milliseconds() as f64 / 1000.0);
                let dur = run.duration().map(|d| d.num_milliseconds() as f64 / 1000.0);
                out.push_str("# HELP srql_summary_age_seconds Age of the span data the summaries reflect (last successful refresh).\n# TYPE srql_summary_age_seconds gauge\n");
                out.push_str(&format!(
                    "srql_summary_age_seconds {}\n",
                    age.unwrap_or(f64::NAN)
                ));
                out.push_str("# HELP srql_summary_refresh_duration_seconds Duration of the last successful refresh.\n# TYPE srql_summary_refresh_duration_seconds gauge\n");
                out.push_str(&format!(
                    "srql_summary_refresh_duration_seconds {}\n",
                    dur.unwrap_or(f64::NAN)
                ));
                out.push_str("# HELP srql_summary_rows Rows in the summaries after the last successful refresh.\n# TYPE srql_summary_rows gauge\n");
                out.push_str(&format!("srql_summary_rows {}\n", run.rows.unwrap_or(0)));
            }
        }
        if let Ok(rows) = client
            .query(
                "SELECT outcome, count(*) FROM srql_refresh_runs GROUP BY outcome ORDER BY outcome",
                &[],
            )
            .await
        {
            out.push_str("# HELP srql_summary_refresh_runs Refresh runs in the log (last 3 days), by outcome.\n# TYPE srql_summary_refresh_runs gauge\n");
            for r in rows {
                let outcome: String = r.get(0);
                let n: i64 = r.get(1);
                out.push_str(&format!(
                    "srql_summary_refresh_runs{{outcome=\"{outcome}\"}} {n}\n"
                ));
            }
        }
    }
    ([("content-type", "text/plain; version=0.0.4")], out).into_response()
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
