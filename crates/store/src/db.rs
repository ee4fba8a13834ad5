//! Connections: a pool for the service, single clients for maintenance.
//!
//! Every wait on the database is bounded: a pool that runs dry or a server that stops
//! answering becomes an error the caller can report (503), never a hang.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
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
    /// The database could not be reached or did not answer in time (pool wait or
    /// connect timed out, server down, restarting or frozen).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A value refused before it was sent (a row too large for PostgreSQL).
    #[error("cannot encode: {0}")]
    Encode(String),
    /// A task of ours (a load's writer or generator) panicked or was cancelled.
    #[error("{0}")]
    Task(String),
    /// A stored value this build does not know (a row written by a newer version).
    #[error("cannot decode: {0}")]
    Decode(String),
    /// A configuration this database cannot run (what to change is in the message).
    #[error("{0}")]
    Unsupported(String),
    /// A configuration value this build cannot read.
    #[error("{0}")]
    BadSetting(String),
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(pg) => DbError::Pg(pg),
            e @ (deadpool_postgres::PoolError::Timeout(_)
            | deadpool_postgres::PoolError::Closed) => DbError::Unavailable(e.to_string()),
            other => DbError::Pool(other.to_string()),
        }
    }
}

/// What kind of failure a [`DbError`] is, for callers that answer differently (503 and
/// retry later, a query too expensive for the statement timeout, or a real fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Unavailable,
    StatementTimeout,
    Other,
}

impl DbError {
    pub fn fault(&self) -> Fault {
        match self {
            DbError::Unavailable(_) => Fault::Unavailable,
            DbError::Connect(e) | DbError::Pg(e) => pg_fault(e),
            _ => Fault::Other,
        }
    }
}

fn pg_fault(e: &tokio_postgres::Error) -> Fault {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        return if *code == SqlState::QUERY_CANCELED {
            // We only cancel queries nobody waits for, so a cancel someone sees is the
            // statement timeout.
            Fault::StatementTimeout
        } else if code.code().starts_with("08")
            || [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::TOO_MANY_CONNECTIONS,
            ]
            .contains(code)
        {
            Fault::Unavailable
        } else {
            Fault::Other
        };
    }
    let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
    if e.is_closed() || io {
        Fault::Unavailable
    } else {
        Fault::Other
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

/// How big a pool is and how long anything waits on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    pub size: usize,
    /// Longest wait for a free connection when all `size` are taken.
    pub wait: Duration,
    /// Longest time to open a new connection (TCP and startup) or to check an idle one.
    pub connect: Duration,
}

impl PoolLimits {
    /// `size` connections with the default bounds: 5 s to get one, 5 s to open one.
    pub fn new(size: usize) -> Self {
        Self {
            size,
            wait: Duration::from_secs(5),
            connect: Duration::from_secs(5),
        }
    }
}

/// A pool of `size` connections to `url`, with [`PoolLimits::new`]'s bounds.
pub fn pool(url: &str, size: usize) -> Result<Pool, DbError> {
    pool_with(url, PoolLimits::new(size))
}

/// A pool to `url` with `limits`.
pub fn pool_with(url: &str, limits: PoolLimits) -> Result<Pool, DbError> {
    let mut config = parse_url(url)?;
    config.application_name("srql");
    pool_for_with(config, limits)
}

/// A pool of `size` connections made with `config`, with [`PoolLimits::new`]'s bounds.
pub fn pool_for(config: tokio_postgres::Config, size: usize) -> Result<Pool, DbError> {
    pool_for_with(config, PoolLimits::new(size))
}

/// A pool made with `config` (its connect timeout lowered to `limits.connect`).
pub fn pool_for_with(
    mut config: tokio_postgres::Config,
    limits: PoolLimits,
) -> Result<Pool, DbError> {
    if config
        .get_connect_timeout()
        .is_none_or(|t| *t > limits.connect)
    {
        config.connect_timeout(limits.connect);
    }
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    // The connect timeout covers only the TCP connect; a server that accepts and then
    // says nothing (frozen, overloaded) is bounded by the create timeout.
    Pool::builder(manager)
        .max_size(limits.size)
        .wait_timeout(Some(limits.wait))
        .create_timeout(Some(limits.connect))
        .recycle_timeout(Some(limits.connect))
        .runtime(Runtime::Tokio1)
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

/// How long a cancel request may take: against a frozen server it never answers.
const CANCEL_WAIT: Duration = Duration::from_secs(5);

/// A pooled connection lent to statements that nobody may be waiting for at the end.
///
/// If this is dropped before [`CancelOnDrop::done`] (the HTTP client went away, a deadline
/// passed), PostgreSQL is asked to cancel whatever the session runs, and the connection
/// is closed rather than returned to the pool with a statement still in flight; without
/// this, a backend runs an abandoned aggregation to its end.
pub struct CancelOnDrop {
    client: Option<deadpool_postgres::Object>,
}

impl CancelOnDrop {
    pub fn new(client: deadpool_postgres::Object) -> Self {
        Self {
            client: Some(client),
        }
    }

    pub fn client(&self) -> &Client {
        // Present until `done` or drop, which both consume `self`.
        self.client
            .as_ref()
            .expect("connection present until dropped")
    }

    /// The statements finished: the connection goes back to the pool.
    pub fn done(mut self) {
        drop(self.client.take());
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(object) = self.client.take() else {
            return;
        };
        let token = object.cancel_token();
        let detached = deadpool_postgres::Object::take(object);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            match tokio::time::timeout(CANCEL_WAIT, token.cancel_query(NoTls)).await {
                Ok(Ok(())) => tracing::debug!("cancelled an abandoned statement"),
                Ok(Err(e)) => tracing::debug!(error = %e, "cancel request failed"),
                Err(_) => tracing::debug!("cancel request unanswered"),
            }
            drop(detached);
        });
    }
}
