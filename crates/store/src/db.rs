//! Connections: a pool for the service, single clients for maintenance.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::{Client, NoTls};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid database url: {0}")]
    BadUrl(String),
    #[error("cannot connect to PostgreSQL: {}", describe(.0))]
    Connect(#[source] tokio_postgres::Error),
    #[error("{}", describe(.0))]
    Pg(#[from] tokio_postgres::Error),
    #[error("connection pool: {0}")]
    Pool(String),
    /// A value refused before it was sent (a row too large for PostgreSQL).
    #[error("cannot encode: {0}")]
    Encode(String),
    /// A task of ours (a load's writer or generator) panicked or was cancelled.
    #[error("{0}")]
    Task(String),
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(pg) => DbError::Pg(pg),
            other => DbError::Pool(other.to_string()),
        }
    }
}

/// tokio-postgres prints server errors as a bare "db error"; say what the server said.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                s.push_str(&format!(" ({d})"));
            }
            if let Some(w) = db.where_() {
                s.push_str(&format!(" [{}]", w.lines().next().unwrap_or_default()));
            }
            s
        }
        None => match std::error::Error::source(e) {
            Some(src) => format!("{e}: {src}"),
            None => e.to_string(),
        },
    }
}

pub fn parse_url(url: &str) -> Result<tokio_postgres::Config, DbError> {
    url.parse::<tokio_postgres::Config>()
        .map_err(|e| DbError::BadUrl(e.to_string()))
}

/// A pool of `size` connections to `url`.
pub fn pool(url: &str, size: usize) -> Result<Pool, DbError> {
    let mut config = parse_url(url)?;
    config.application_name("srql");
    pool_for(config, size)
}

/// A pool of `size` connections made with `config` as it is.
pub fn pool_for(config: tokio_postgres::Config, size: usize) -> Result<Pool, DbError> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .build()
        .map_err(|e| DbError::Pool(e.to_string()))
}

/// One dedicated connection, driven on a background task.
pub async fn connect(url: &str) -> Result<Client, DbError> {
    let mut config = parse_url(url)?;
    config.application_name("srql");
    let (client, connection) = config.connect(NoTls).await.map_err(DbError::Connect)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "database connection closed");
        }
    });
    Ok(client)
}

/// The same server and credentials, another database.
pub fn url_for_database(url: &str, database: &str) -> Result<tokio_postgres::Config, DbError> {
    let mut config = parse_url(url)?;
    config.dbname(database);
    Ok(config)
}
