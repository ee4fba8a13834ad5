//! Everything that talks to PostgreSQL: the embedded cluster, connections, migrations,
//! partition upkeep, span writes, summary maintenance and query execution.

pub mod catalog;
pub mod citus_local;
pub mod credentials;
pub mod db;
pub mod distributed;
/// The Citus cluster for the distributed tests, beside [`testing`].
pub mod distributed_testing;
pub mod embedded;
pub mod freshness;
pub mod locks;
pub mod migrate;
pub mod partitions;
pub mod roles;
pub mod sealing;
pub mod span_indexes;
/// The test harness lives here (not behind a feature) so every crate's tests share it.
pub mod testing;

pub use db::DbError;
pub mod cron;
pub mod exec;
pub mod incremental;
pub mod ingest;
mod ingest_copy;
pub mod refresh_runs;
pub mod resources;
pub mod settings;
pub mod setup;
pub mod summaries;
pub mod summary_indexes;
