//! The one place errors become HTTP statuses.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use store::db::Fault;

/// Seconds a client should wait before retrying when a lane is full.
const RETRY_BUSY_SECS: u64 = 1;
/// Seconds a client should wait before retrying while the database is unavailable.
const RETRY_UNAVAILABLE_SECS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or wrong api key: send it in the `x-api-key` header")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    #[error(transparent)]
    Compile(#[from] srql_plan::CompileError),
    /// Every slot of a lane stayed taken for the whole wait.
    #[error("too many {0} queries are running: retry shortly")]
    Busy(&'static str),
    /// PostgreSQL stopped the query at the statement timeout.
    #[error(
        "the query ran longer than the statement timeout ({}s) and was stopped: \
         narrow the time range or add filters",
        .0.as_secs_f64()
    )]
    QueryTimeout(Duration),
    #[error(transparent)]
    Db(#[from] store::DbError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, retry_after) = match &self {
            ApiError::BadRequest(_) | ApiError::Compile(_) => (StatusCode::BAD_REQUEST, None),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, None),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, None),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, None),
            ApiError::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, Some(RETRY_BUSY_SECS)),
            ApiError::QueryTimeout(_) => (StatusCode::GATEWAY_TIMEOUT, None),
            ApiError::Db(e) => match e.fault() {
                Fault::Unavailable => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some(RETRY_UNAVAILABLE_SECS),
                ),
                Fault::StatementTimeout => (StatusCode::GATEWAY_TIMEOUT, None),
                Fault::Other => (StatusCode::INTERNAL_SERVER_ERROR, None),
            },
        };
        let message = match &self {
            // Internal details are logged here, where the error is handled, and not shown.
            ApiError::Db(e) => match e.fault() {
                Fault::Unavailable => {
                    tracing::warn!(error = %e, "database unavailable");
                    "the database is unavailable: retry shortly".to_string()
                }
                Fault::StatementTimeout => {
                    tracing::warn!(error = %e, "statement timeout");
                    "the query ran longer than the statement timeout and was stopped".to_string()
                }
                Fault::Other => {
                    tracing::error!(error = %e, "query failed");
                    "internal error while running the query".to_string()
                }
            },
            other => other.to_string(),
        };
        let mut response = (status, Json(json!({ "error": message }))).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
