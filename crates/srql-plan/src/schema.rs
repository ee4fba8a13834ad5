//! The allow-lists: which columns each entity returns, filters on and sorts by. Nothing
//! reaches SQL as an identifier unless it is written here.

use srql_lang::Entity;

/// How a column's value is typed in SQL and rendered in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Timestamptz,
    Text,
    Int4,
    Int8,
    Float8,
    /// `text[]`, rendered `[]` when NULL.
    TextArray,
    Jsonb,
}

/// An output column: JSON key and SQL expression (identical for plain columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColumnType,
    /// NULL is rendered as this type's zero (`[]`, `0`) because clients rely on it.
    pub null_as_zero: bool,
}

const fn col(name: &'static str, ty: ColumnType) -> Column {
    Column {
        name,
        ty,
        null_as_zero: false,
    }
}

const fn zero(name: &'static str, ty: ColumnType) -> Column {
    Column {
        name,
        ty,
        null_as_zero: true,
    }
}

use ColumnType::*;

/// Trace summary rows, in JSON key order.
pub const SUMMARY_COLUMNS: &[Column] = &[
    col("timestamp", Timestamptz),
    col("trace_id", Text),
    col("root_span_id", Text),
    col("root_span_name", Text),
    col("root_service_name", Text),
    col("root_span_kind", Int4),
    col("start_time_unix_nano", Int8),
    col("end_time_unix_nano", Int8),
    zero("duration_ms", Float8),
    col("status_code", Int4),
    col("status_message", Text),
    zero("service_set", TextArray),
    zero("span_count", Int8),
    zero("error_count", Int8),
];

/// Span rows (`in:traces`): the columns of `otel_traces`, plus `duration_ms`.
pub const SPAN_COLUMNS: &[Column] = &[
    col("timestamp", Timestamptz),
    col("trace_id", Text),
    col("span_id", Text),
    col("parent_span_id", Text),
    col("name", Text),
    col("kind", Int4),
    col("start_time_unix_nano", Int8),
    col("end_time_unix_nano", Int8),
    zero("duration_ms", Float8),
    col("service_name", Text),
    col("service_version", Text),
    col("service_instance", Text),
    col("scope_name", Text),
    col("scope_version", Text),
    col("status_code", Int4),
    col("status_message", Text),
    col("attributes", Jsonb),
    col("resource_attributes", Jsonb),
    col("events", Jsonb),
    col("links", Jsonb),
    col("created_at", Timestamptz),
];

/// SQL for span duration in milliseconds; NULL times count as zero length. Migration 0011
/// indexes `(service_name, <this expression>)`, which the planner only matches character
/// for character: change both or neither.
pub const SPAN_DURATION_MS: &str =
    "(greatest(coalesce(end_time_unix_nano - start_time_unix_nano, 0), 0)::float8 / 1e6)";

/// What a filter on a field means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Text column: equality, LIKE, lists.
    Text,
    /// Integer (int4) column: equality, lists, comparisons.
    Int4,
    /// Integer (int8) column.
    Int8,
    /// Floating point column.
    Float8,
    /// The trace touches this service (summaries' `service_set`).
    ServiceSet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Canonical name, used in messages.
    pub name: &'static str,
    /// SQL expression (a column of the entity's relation, or a fixed expression).
    pub sql: &'static str,
    pub kind: FieldKind,
}

const fn field(name: &'static str, kind: FieldKind) -> Field {
    Field {
        name,
        sql: name,
        kind,
    }
}

const SUMMARY_FILTERS: &[(&str, Field)] = &[
    ("trace_id", field("trace_id", FieldKind::Text)),
    ("root_span_id", field("root_span_id", FieldKind::Text)),
    ("root_span_name", field("root_span_name", FieldKind::Text)),
    (
        "root_service_name",
        field("root_service_name", FieldKind::Text),
    ),
    ("service_name", field("service_set", FieldKind::ServiceSet)),
    ("service.name", field("service_set", FieldKind::ServiceSet)),
    ("service_set", field("service_set", FieldKind::ServiceSet)),
    ("status_code", field("status_code", FieldKind::Int4)),
    ("root_span_kind", field("root_span_kind", FieldKind::Int4)),
    ("span_count", field("span_count", FieldKind::Int8)),
    ("error_count", field("error_count", FieldKind::Int8)),
    ("duration_ms", field("duration_ms", FieldKind::Float8)),
];

const SPAN_FILTERS: &[(&str, Field)] = &[
    ("trace_id", field("trace_id", FieldKind::Text)),
    ("span_id", field("span_id", FieldKind::Text)),
    ("parent_span_id", field("parent_span_id", FieldKind::Text)),
    ("name", field("name", FieldKind::Text)),
    ("span_name", field("name", FieldKind::Text)),
    ("service_name", field("service_name", FieldKind::Text)),
    ("service.name", field("service_name", FieldKind::Text)),
    ("service_version", field("service_version", FieldKind::Text)),
    (
        "service_instance",
        field("service_instance", FieldKind::Text),
    ),
    ("scope_name", field("scope_name", FieldKind::Text)),
    ("scope_version", field("scope_version", FieldKind::Text)),
    ("status_message", field("status_message", FieldKind::Text)),
    ("kind", field("kind", FieldKind::Int4)),
    ("span_kind", field("kind", FieldKind::Int4)),
    ("status_code", field("status_code", FieldKind::Int4)),
    (
        "duration_ms",
        Field {
            name: "duration_ms",
            sql: SPAN_DURATION_MS,
            kind: FieldKind::Float8,
        },
    ),
    (
        "duration",
        Field {
            name: "duration_ms",
            sql: SPAN_DURATION_MS,
            kind: FieldKind::Float8,
        },
    ),
];

/// A sortable field: the SQL expression, never NULL so keyset comparisons stay total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortField {
    pub name: &'static str,
    pub sql: &'static str,
    pub ty: ColumnType,
}

const SUMMARY_SORTS: &[(&str, SortField)] = &[
    ("timestamp", sort("timestamp", "timestamp", Timestamptz)),
    ("duration_ms", sort("duration_ms", "duration_ms", Float8)),
    ("span_count", sort("span_count", "span_count", Int8)),
    ("error_count", sort("error_count", "error_count", Int8)),
    (
        "root_service_name",
        sort("root_service_name", "coalesce(root_service_name, '')", Text),
    ),
];

const SPAN_SORTS: &[(&str, SortField)] = &[
    ("timestamp", sort("timestamp", "timestamp", Timestamptz)),
    (
        "start_time_unix_nano",
        sort(
            "start_time_unix_nano",
            "coalesce(start_time_unix_nano, 0)",
            Int8,
        ),
    ),
    (
        "end_time_unix_nano",
        sort(
            "end_time_unix_nano",
            "coalesce(end_time_unix_nano, 0)",
            Int8,
        ),
    ),
    ("duration_ms", sort("duration_ms", SPAN_DURATION_MS, Float8)),
    ("duration", sort("duration_ms", SPAN_DURATION_MS, Float8)),
    (
        "service_name",
        sort("service_name", "coalesce(service_name, '')", Text),
    ),
];

const fn sort(name: &'static str, sql: &'static str, ty: ColumnType) -> SortField {
    SortField { name, sql, ty }
}

/// Columns that make a row's position unique after the sort keys (keyset tie-breakers).
pub fn tie_breakers(entity: Entity) -> &'static [SortField] {
    const SUMMARY_TIES: &[SortField] = &[sort("trace_id", "trace_id", Text)];
    const SPAN_TIES: &[SortField] = &[
        sort("trace_id", "trace_id", Text),
        sort("span_id", "span_id", Text),
    ];
    match entity {
        Entity::TraceSummaries => SUMMARY_TIES,
        Entity::Traces => SPAN_TIES,
    }
}

pub fn columns(entity: Entity) -> &'static [Column] {
    match entity {
        Entity::TraceSummaries => SUMMARY_COLUMNS,
        Entity::Traces => SPAN_COLUMNS,
    }
}

fn filters(entity: Entity) -> &'static [(&'static str, Field)] {
    match entity {
        Entity::TraceSummaries => SUMMARY_FILTERS,
        Entity::Traces => SPAN_FILTERS,
    }
}

fn sorts(entity: Entity) -> &'static [(&'static str, SortField)] {
    match entity {
        Entity::TraceSummaries => SUMMARY_SORTS,
        Entity::Traces => SPAN_SORTS,
    }
}

pub fn filter_field(entity: Entity, name: &str) -> Option<Field> {
    filters(entity)
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
}

pub fn sort_field(entity: Entity, name: &str) -> Option<SortField> {
    sorts(entity)
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
}

/// Names accepted as filters, for "expected one of" hints.
pub fn filter_names(entity: Entity) -> Vec<&'static str> {
    filters(entity).iter().map(|(n, _)| *n).collect()
}

pub fn sort_names(entity: Entity) -> Vec<&'static str> {
    sorts(entity).iter().map(|(n, _)| *n).collect()
}

pub fn entity_name(entity: Entity) -> &'static str {
    match entity {
        Entity::TraceSummaries => "otel_trace_summaries",
        Entity::Traces => "traces",
    }
}

/// The sort of a query without `sort:` (descending): each entity's first sort field,
/// its timestamp.
pub fn default_sort(entity: Entity) -> SortField {
    sorts(entity)[0].1
}

/// The relations query SQL reads, by the name it reads them under.
pub mod relation {
    /// Span rows: `otel_traces` with each row's resource columns filled in from
    /// `srql_resources` (migration 0032's view; the join is removed by PostgreSQL from
    /// queries that read none of them).
    pub const SPANS: &str = "srql_spans";
    /// The span table itself, for reads that need no resource column: the view's join
    /// is not removed everywhere (PostgreSQL 15 keeps it in the arms of a `UNION ALL`
    /// it plans apart, a hash join over every span read).
    pub const SPAN_TABLE: &str = "otel_traces";
    /// Precomputed summaries (materialized view or table).
    pub const SUMMARIES: &str = "otel_trace_summaries";
    /// The `WITH` alias of summaries aggregated for one query.
    pub const ON_THE_FLY: &str = "trace_summaries";
}
