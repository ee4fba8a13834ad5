//! SRQL planning: typed query + [`Catalog`] -> [`Plan`] (source, reason, SQL and binds).
//!
//! Architecture invariant: no I/O. The catalog is a value handed in, "now" is an argument,
//! and user text only ever reaches SQL as a bind parameter.

mod catalog;
mod cursor;
mod error;
mod plan;
pub mod schema;
mod sql;
pub mod summary_sql;
mod time_range;
mod translate;

pub use catalog::{Catalog, SummaryKind, SummaryState};
pub use error::CompileError;
pub use plan::{compile, plan, Direction, Output, Page, Plan, Request, Source, SourcePreference};
pub use sql::{Param, SqlQuery};
pub use time_range::{TimeRange, MAX_RANGE_DAYS};
pub use translate::{column_type_name, translation};
