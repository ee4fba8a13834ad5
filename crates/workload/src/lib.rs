//! The deterministic synthetic span workload of docs/workload.md.
//!
//! A workload is a pure function of a [`WorkloadConfig`] (seed, time range, trace count):
//! the same config gives the same spans on every machine and every build, because the
//! random numbers come from this crate's own PRNG rather than a dependency. Trace `i`
//! depends only on `(seed, i)`, so generation splits across threads and resumes anywhere.
//!
//! ```
//! use chrono::{Duration, Utc};
//! use workload::{Generator, WorkloadConfig};
//!
//! let end = Utc::now();
//! let config = WorkloadConfig::for_spans(42, 1_000, end - Duration::days(7), end);
//! let spans: usize = Generator::new(config).map(|t| t.spans.len()).sum();
//! assert!(spans > 800 && spans < 1_200);
//! ```
//!
//! This crate does no I/O; the loader decides how spans reach PostgreSQL, inserting a
//! span `arrival_delay_ms` after the rest of its trace.

mod attributes;
mod catalog;
mod config;
mod generator;
mod json;
mod prng;
mod resources;
mod span;
mod trace_builder;
mod trace_shape;

pub use catalog::{ROUTES, SERVICES};
pub use config::{Scale, WorkloadConfig, DEFAULT_RANGE, MEAN_SPANS_PER_TRACE};
pub use generator::{trace_at, Generator};
pub use span::{kind, status, Span, Trace};
pub use span_row::{SpanResource, SpanRow, SpanScope};

/// The largest number of spans in one trace.
pub const MAX_SPANS_PER_TRACE: usize = trace_shape::MAX_SPANS;
/// The largest number of services one trace touches.
pub const MAX_SERVICES_PER_TRACE: usize = trace_shape::MAX_SERVICES_PER_TRACE;
/// The largest `arrival_delay_ms` of a late span.
pub const MAX_ARRIVAL_DELAY_MS: i64 = trace_shape::MAX_ARRIVAL_DELAY_MS as i64;
/// No span starts more than this many nanoseconds after its trace's start.
pub const MAX_START_OFFSET_NANOS: i64 = trace_shape::MAX_START_OFFSET_NS;
