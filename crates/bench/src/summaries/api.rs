//! SRQL requests over the benchmark's HTTP client: pin the path, time the round trip,
//! and check that the pinned path really answered.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use super::http_client::HttpClient;

/// The two ways the service can answer a trace-summary query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Path {
    /// Precomputed summaries (the materialized view).
    Summaries,
    /// Aggregation of `otel_traces` per request.
    OnTheFly,
}

impl Path {
    pub const ALL: [Path; 2] = [Path::Summaries, Path::OnTheFly];

    /// The request body's `source` value that pins this path.
    fn request_value(self) -> &'static str {
        match self {
            Path::Summaries => "summaries",
            Path::OnTheFly => "on_the_fly",
        }
    }

    /// Whether an `x-srql-source` value means this path answered.
    fn answered_by(self, source: &str) -> bool {
        match self {
            // Either kind of summary relation counts: the benchmark is about the path.
            Path::Summaries => matches!(source, "materialized_view" | "summary_table"),
            Path::OnTheFly => source == "on_the_fly",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Path::Summaries => "summaries",
            Path::OnTheFly => "on the fly",
        }
    }
}

/// Why a request produced no timing.
#[derive(Debug)]
pub enum QueryError {
    /// No complete response within the timeout; the measurement can be skipped.
    Timeout(Duration),
    /// Anything else: a wrong status, the wrong path, a broken connection. A bug or a
    /// broken setup, so the benchmark stops.
    Failed(String),
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::Timeout(t) => write!(f, "no response within {} s", t.as_secs()),
            QueryError::Failed(why) => f.write_str(why),
        }
    }
}

/// One page as far as the benchmark cares.
#[derive(Debug)]
pub struct Page {
    pub rows: usize,
    pub next_cursor: Option<String>,
}

/// A keep-alive connection to `/api/query`.
pub struct SrqlClient {
    addr: SocketAddr,
    timeout: Duration,
    http: Option<HttpClient>,
}

impl SrqlClient {
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Self, String> {
        Ok(Self {
            addr,
            timeout,
            http: Some(HttpClient::connect(addr).await?),
        })
    }

    /// Runs `query` on `path` (from `cursor` when given); returns the time from sending
    /// the request to the last byte of the response, and the page.
    pub async fn query(
        &mut self,
        query: &str,
        path: Path,
        cursor: Option<&str>,
    ) -> Result<(Duration, Page), QueryError> {
        let mut body = json!({ "query": query, "source": path.request_value() });
        if let Some(c) = cursor {
            body["cursor"] = Value::String(c.to_string());
        }
        let body = body.to_string().into_bytes();
        // A connection dropped after a timeout is replaced outside the timed region.
        let http = match self.http.as_mut() {
            Some(h) => h,
            None => self.http.insert(
                HttpClient::connect(self.addr)
                    .await
                    .map_err(QueryError::Failed)?,
            ),
        };
        let started = Instant::now();
        let response =
            tokio::time::timeout(self.timeout, http.post_json("/api/query", &body)).await;
        let elapsed = started.elapsed();
        let response = match response {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                self.http = None;
                return Err(QueryError::Failed(format!("`{query}`: {e}")));
            }
            Err(_) => {
                // The late response would be read as the answer to the next request.
                self.http = None;
                return Err(QueryError::Timeout(self.timeout));
            }
        };
        let text = String::from_utf8_lossy(&response.body);
        if response.status != 200 {
            return Err(QueryError::Failed(format!(
                "`{query}` on the {} path: HTTP {}: {text}",
                path.label(),
                response.status
            )));
        }
        let source = response.header("x-srql-source").unwrap_or("(none)");
        if !path.answered_by(source) {
            return Err(QueryError::Failed(format!(
                "`{query}`: asked for the {} path, but x-srql-source is `{source}`",
                path.label()
            )));
        }
        let doc: Value = serde_json::from_str(&text)
            .map_err(|e| QueryError::Failed(format!("`{query}`: response is not JSON: {e}")))?;
        let rows = doc["results"]
            .as_array()
            .ok_or_else(|| QueryError::Failed(format!("`{query}`: response has no `results`")))?
            .len();
        let next_cursor = doc["pagination"]["next_cursor"]
            .as_str()
            .map(str::to_string);
        Ok((elapsed, Page { rows, next_cursor }))
    }
}
