//! The typed query: what the parser produces and the planner consumes.
//!
//! The parser knows the SRQL *syntax* but not the schema: field names stay strings here and
//! the planner checks them against each entity's allow-list, because `in:` may come after the
//! filters it governs.

use chrono::{DateTime, Utc};

/// A parsed SRQL query. Built by [`crate::parse`].
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// `in:` (last occurrence wins); `None` when the query names no entity.
    pub entity: Option<Entity>,
    /// `time:` / `timeframe:` (last occurrence wins).
    pub time: Option<TimeSpec>,
    /// Byte offset of the `time:` token that set [`Query::time`], for the planner's range
    /// errors; 0 without one.
    pub time_offset: usize,
    /// Field filters, ANDed, in query order.
    pub filters: Vec<Filter>,
    /// `sort:` / `order:` keys in priority order (all occurrences, in order). Empty: the
    /// entity's default.
    pub sort: Vec<SortKey>,
    /// `limit:` (last occurrence wins); 0 as written (the planner reads it as 1).
    pub limit: Option<u32>,
    /// `stats:"..."`: aggregate mode.
    pub stats: Option<Stats>,
    /// `rollup_stats:NAME`, e.g. `summary`.
    pub rollup_stats: Option<String>,
    /// Upstream keys accepted without effect on traces (`window`, `mode`, `bounded`,
    /// `include_deleted`), lowercased, each once, in query order: the API reports them.
    pub ignored_keys: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    /// `otel_trace_summaries` / `trace_summaries` / `traces_summaries`: one row per trace.
    TraceSummaries,
    /// `traces` / `otel_traces` / `trace_spans`: one row per span.
    Traces,
}

/// A time filter as written; the planner resolves it against "now".
#[derive(Debug, Clone, PartialEq)]
pub enum TimeSpec {
    /// `last_24h`, `7d`, `last-7-days`, `7 days`, ...: the trailing period, in seconds.
    Last { seconds: i64 },
    /// Since midnight UTC today.
    Today,
    /// The previous UTC calendar day.
    Yesterday,
    /// `[START,END]`, either end open.
    Range {
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    },
}

/// `FIELD:VALUE` or `!FIELD:VALUE`.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// Field name as written, lowercased, except an attribute key after its prefix
    /// (`span.attributes.`, `span.resource.`, `attributes.`, `resource.`), which is
    /// case-sensitive as in OpenTelemetry.
    pub field: String,
    pub negated: bool,
    pub value: FilterValue,
    /// Byte offset of the token in the query text, for error messages.
    pub offset: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    /// A single value (quotes removed, escapes resolved). `like` is true when the value
    /// contains `%` and is therefore a case-insensitive LIKE pattern.
    Scalar { value: String, like: bool },
    /// `(a,b,c)` or `[a,b]`.
    List(Vec<String>),
    /// `>N`, `>=N`, `<N`, `<=N`: the number is kept as text; the planner types it.
    Compare { op: CompareOp, value: String },
    /// A bare `*` on an attribute key (`span.attributes.http.route:*`): the key is
    /// present, whatever its value.
    Exists,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    /// Field name as written, lowercased.
    pub field: String,
    pub descending: bool,
    pub offset: usize,
}

/// Everything the `stats:` tokens of a query ask for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stats {
    /// `EXPR as alias`, over all `stats:` tokens, in order.
    pub exprs: Vec<StatExpr>,
    /// `... by KEY[, KEY]`: one result row per group of these fields; empty for one row
    /// over everything.
    pub by: Vec<GroupKey>,
}

/// A field named after `by` in `stats:`.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupKey {
    /// Field name as written, lowercased.
    pub field: String,
    /// Byte offset of the name in the query text, for error messages.
    pub offset: usize,
}

/// One `EXPR as alias` of a `stats:` clause.
#[derive(Debug, Clone, PartialEq)]
pub struct StatExpr {
    pub func: StatFunc,
    /// `[a-z0-9_]+`
    pub alias: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StatFunc {
    /// `count()`
    Count,
    /// `sum(if(FIELD OP VALUE, 1, 0))`, OP one of `=`, `!=`, `>`, `>=`, `<`, `<=`.
    CountIf {
        field: String,
        op: CompareOp,
        value: String,
    },
}
