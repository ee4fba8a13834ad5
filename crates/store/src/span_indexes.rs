//! The span search indexes of migrations 0011 and 0016 (per heap day since 0013),
//! switched on or off for a database, together.
//!
//! They are on by default; each costs every span write an index insertion, so a
//! deployment that never searches inside traces, or needs every last span per second of
//! ingest, can drop them (see docs/configuration.md for the measured price).

use tokio_postgres::Client;

use crate::db::DbError;

/// `on` builds them (if missing), `off` drops them, unset leaves the database as it is.
pub const ENV: &str = "SRQL_SPAN_SEARCH_INDEXES";

/// What [`ENV`] asks for: `None` when unset.
pub fn wanted_from_env() -> Result<Option<bool>, DbError> {
    match std::env::var(ENV) {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Ok(v) if v.trim() == "on" => Ok(Some(true)),
        Ok(v) if v.trim() == "off" => Ok(Some(false)),
        Ok(v) => Err(DbError::BadSetting(format!(
            "{ENV}: `{v}` is neither `on` nor `off`"
        ))),
        Err(e) => Err(DbError::BadSetting(format!("{ENV}: {e}"))),
    }
}

/// Builds or drops the indexes on every heap day; returns how many changed. Building
/// takes seconds per million spans and holds span inserts meanwhile.
pub async fn set(client: &Client, enabled: bool) -> Result<i32, DbError> {
    let row = client
        .query_one("SELECT srql_span_search_indexes($1)", &[&enabled])
        .await?;
    Ok(row.get(0))
}
