//! SRQL planning in pure stages: typed query + [`Catalog`] + [`PageRequest`] -> [`Plan`] (source and typed
//! reason, typed predicates, time range, sort keys, page, output; no SQL), then
//! [`render`] -> [`SqlQuery`] (SQL text and binds).
//!
//! Architecture invariant: no I/O. The catalog is a value handed in, "now" is an argument,
//! and user text only ever reaches SQL as a bind parameter.

mod catalog;
mod cursor;
mod direction;
mod error;
mod group_by;
mod on_the_fly;
mod page_request;
mod plan;
mod render;
pub mod schema;
pub mod span_search;
mod sql;
pub mod summary_sql;
mod time_range;
mod trace_extent;
mod trace_reach;
mod translate;

pub use catalog::{Catalog, SummaryKind, SummaryState};
pub use direction::Direction;
pub use error::{CompileError, CursorError};
pub use group_by::MAX_GROUPS;
pub use page_request::{PageLimits, PageRequest};
pub use plan::{
    compile, plan, Count, ExtentBounds, Measures, Output, Page, Plan, Predicate, Reason, Source,
    SourcePreference, Stat, Test, Unusable,
};
pub use render::render;
pub use sql::{Param, SqlQuery};
pub use time_range::{TimeRange, MAX_RANGE_DAYS};
pub use trace_extent::extent_query;
pub use trace_reach::{FEW_MATCHES, REACH_SECS};
pub use translate::{column_type_name, translation};
