//! What the planner knows about the database, passed in as a value so planning stays pure.
//! The store reads it from PostgreSQL; tests construct it directly.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    pub summaries: SummaryState,
    /// How long spans are kept. A query without a time filter covers this period (older
    /// rows may linger until their whole day partition expires, and are not shown), so
    /// both paths answer it alike. `None`: unknown, and such a query reads everything.
    pub retention: Option<Duration>,
    /// Whether `srql_trace_extent` (migration 0017) bounds every trace's spans exactly:
    /// incremental capture on one node. Lookups by trace_id then visit only the days
    /// their traces lie in, which on sealed (columnar) days is what keeps them cheap.
    pub trace_extents: bool,
    /// Whether Citus is installed, so that the span table may be distributed: Citus
    /// refuses a subquery correlated with a row of a `WITH` query or subquery, which
    /// the on-the-fly path then does without (`render.rs`, the services of the rows shown).
    pub distributed: bool,
    /// How many spans are stored, by PostgreSQL's statistics of the day partitions
    /// (`reltuples`); `None` when no day has been analyzed. A cost estimate that only
    /// chooses between exact shapes, never an answer.
    pub stored_spans: Option<f64>,
}

impl Catalog {
    /// A catalog without usable summaries: every summary query takes the on-the-fly path.
    pub fn without_summaries() -> Self {
        Self {
            summaries: SummaryState::Missing,
            retention: None,
            trace_extents: false,
            distributed: false,
            stored_spans: None,
        }
    }
}

/// The state of the `otel_trace_summaries` relation.
#[derive(Debug, Clone, PartialEq)]
pub enum SummaryState {
    /// No such relation (not migrated, or dropped).
    Missing,
    /// The relation exists but holds no data yet (a view created WITH NO DATA).
    Unpopulated { kind: SummaryKind },
    Ready {
        kind: SummaryKind,
        /// Earliest summary `timestamp` the relation is complete for: the start of its
        /// window as of the last refresh.
        covers_from: DateTime<Utc>,
        /// The span data the summaries reflect (the last refresh's snapshot).
        as_of: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SummaryKind {
    /// The seed's design: a materialized view refreshed as a whole.
    MaterializedView,
    /// Incrementally maintained table.
    Table,
}
