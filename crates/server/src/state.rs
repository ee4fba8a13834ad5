//! Shared state of the HTTP service.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use srql_plan::Catalog;
use tokio::sync::RwLock;

use crate::metrics::Metrics;

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub api_key: Option<String>,
    pub default_limit: u32,
    pub max_limit: u32,
    pub max_body_bytes: usize,
    /// How long a catalog read is reused; bounds the staleness of the source choice, and
    /// spares each query three catalog round trips.
    pub catalog_ttl: Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            api_key: None,
            default_limit: 100,
            max_limit: 500,
            max_body_bytes: 64 * 1024,
            catalog_ttl: Duration::from_secs(1),
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
    catalog: Arc<RwLock<Option<(Instant, Catalog)>>>,
}

impl AppState {
    pub fn new(pool: Pool, config: ServiceConfig) -> Self {
        Self {
            pool,
            config: Arc::new(config),
            metrics: Arc::new(Metrics::default()),
            ingest: None,
            catalog: Arc::new(RwLock::new(None)),
        }
    }

    /// Reports `probe`'s ingest counters on `/metrics`.
    pub fn with_ingest(mut self, probe: crate::metrics::IngestProbe) -> Self {
        self.ingest = Some(probe);
        self
    }

    /// The planner's catalog, re-read from the database at most once per TTL.
    pub async fn catalog(&self) -> Result<Catalog, store::DbError> {
        if let Some((at, c)) = self.catalog.read().await.as_ref() {
            if at.elapsed() < self.config.catalog_ttl {
                return Ok(c.clone());
            }
        }
        let client = self.pool.get().await?;
        let c =
            store::summaries::catalog(&client, self.config.default_limit, self.config.max_limit)
                .await?;
        *self.catalog.write().await = Some((Instant::now(), c.clone()));
        Ok(c)
    }

    /// Forget the cached catalog (after a refresh or a schema change).
    pub async fn invalidate_catalog(&self) {
        *self.catalog.write().await = None;
    }
}
