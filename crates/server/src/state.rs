//! Shared state of the HTTP service.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use srql_plan::Catalog;
use tokio::sync::{Mutex, RwLock};

use crate::error::ApiError;
use crate::lanes::{Lane, Lanes};
use crate::metrics::Metrics;

/// How far past the statement timeout we wait for PostgreSQL to report it before deciding
/// the server itself is not answering (frozen, partitioned away).
pub const DEADLINE_GRACE: Duration = Duration::from_secs(2);

/// Longest a catalog read may take; it is three tiny queries.
const CATALOG_DEADLINE: Duration = Duration::from_secs(5);

/// After a failed catalog read, requests fail at once for this long instead of each
/// waiting out another read of a database that is not answering.
const CATALOG_RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub api_key: Option<String>,
    pub page_limits: srql_plan::PageLimits,
    pub max_body_bytes: usize,
    /// How long a catalog read is reused; bounds the staleness of the source choice, and
    /// spares each query three catalog round trips.
    pub catalog_ttl: Duration,
    /// PostgreSQL's `statement_timeout` for every query of `/api/query`.
    pub query_timeout: Duration,
    /// Whether requests may pin `source` (`summaries`, `on_the_fly`); off, because an
    /// on-the-fly aggregation over a long range is a client-controlled cost.
    pub allow_source_override: bool,
    /// Queries over spans (on-the-fly aggregations, span reads) that run at once.
    pub on_the_fly_slots: usize,
    /// How long a query waits for a slot in its lane before a 503.
    pub lane_wait: Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            api_key: None,
            page_limits: srql_plan::PageLimits::default(),
            max_body_bytes: 64 * 1024,
            catalog_ttl: Duration::from_secs(1),
            query_timeout: Duration::from_secs(30),
            allow_source_override: false,
            on_the_fly_slots: 2,
            lane_wait: Duration::from_secs(5),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    pub config: Arc<ServiceConfig>,
    pub metrics: Arc<Metrics>,
    /// The OTLP receivers' counters, when they run beside the API.
    pub ingest: Option<crate::metrics::IngestProbe>,
    pub(crate) lanes: Arc<Lanes>,
    catalog: Arc<RwLock<Option<(Instant, Catalog)>>>,
    /// Held by the one request re-reading the catalog; holds when the last read failed.
    catalog_refresh: Arc<Mutex<Option<Instant>>>,
}

impl AppState {
    /// The service over `pool`, which it splits into lanes (see `lanes.rs`); the pool's
    /// size is the most connections the API uses.
    pub fn new(pool: Pool, config: ServiceConfig) -> Self {
        let lanes = Lanes::new(&pool, config.on_the_fly_slots);
        Self {
            pool,
            config: Arc::new(config),
            metrics: Arc::new(Metrics::default()),
            ingest: None,
            lanes: Arc::new(lanes),
            catalog: Arc::new(RwLock::new(None)),
            catalog_refresh: Arc::new(Mutex::new(None)),
        }
    }

    /// Reports `probe`'s ingest counters on `/metrics`.
    pub fn with_ingest(mut self, probe: crate::metrics::IngestProbe) -> Self {
        self.ingest = Some(probe);
        self
    }

    /// The planner's catalog, re-read from the database at most once per TTL by one
    /// request at a time. The others wait for that read (milliseconds when the database
    /// answers) rather than use the old value, so when the database stops answering every
    /// request learns it within the catalog deadline instead of starting a query that
    /// would hang until its own.
    pub async fn catalog(&self) -> Result<Catalog, ApiError> {
        if let Some(c) = self.fresh_catalog().await {
            return Ok(c);
        }
        let mut failed_at = tokio::time::timeout(CATALOG_DEADLINE, self.catalog_refresh.lock())
            .await
            .map_err(|_| unavailable("no catalog read finished in time"))?;
        // Another request may have re-read it while we waited for the lock.
        if let Some(c) = self.fresh_catalog().await {
            return Ok(c);
        }
        if failed_at.is_some_and(|t| t.elapsed() < CATALOG_RETRY_AFTER_FAILURE) {
            return Err(unavailable("the last catalog read failed a moment ago"));
        }
        let read = async {
            let _slot = self.lanes.slot(Lane::Service, CATALOG_DEADLINE).await?;
            let conn =
                store::db::CancelOnDrop::new(self.pool.get().await.map_err(store::DbError::from)?);
            let c = store::summaries::catalog(conn.client()).await;
            conn.done();
            Ok::<_, ApiError>(c?)
        };
        let result = tokio::time::timeout(CATALOG_DEADLINE, read)
            .await
            .unwrap_or_else(|_| Err(unavailable("the catalog read got no answer in time")));
        match result {
            Ok(c) => {
                *failed_at = None;
                *self.catalog.write().await = Some((Instant::now(), c.clone()));
                Ok(c)
            }
            Err(e) => {
                *failed_at = Some(Instant::now());
                Err(e)
            }
        }
    }

    async fn fresh_catalog(&self) -> Option<Catalog> {
        match self.catalog.read().await.as_ref() {
            Some((at, c)) if at.elapsed() < self.config.catalog_ttl => Some(c.clone()),
            _ => None,
        }
    }

    /// Forget the cached catalog (after a refresh or a schema change).
    pub async fn invalidate_catalog(&self) {
        *self.catalog.write().await = None;
    }
}

fn unavailable(what: &str) -> ApiError {
    ApiError::Db(store::DbError::Unavailable(what.to_string()))
}
