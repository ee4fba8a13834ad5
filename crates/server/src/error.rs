//! The one place errors become HTTP statuses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or wrong api key: send it in the `x-api-key` header")]
    Unauthorized,
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    #[error(transparent)]
    Compile(#[from] srql_plan::CompileError),
    #[error(transparent)]
    Db(#[from] store::DbError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest(_) | ApiError::Compile(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Db(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match &self {
            // Internal details are logged here, where the error is handled, and not shown.
            ApiError::Db(e) => {
                tracing::error!(error = %e, "query failed");
                "internal error while running the query".to_string()
            }
            other => other.to_string(),
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}
