//! The columns of `otel_traces` that writers fill, in the order [`crate::CopyRows`]
//! encodes them: every COPY and every column list derived from the table's shape comes
//! from here.
//!
//! The resource is not among them: a writer stores each resource once (`srql_resources`,
//! through `store::resources`) and gives the span its id. `service_version`,
//! `service_instance` and `resource_attributes` stay in the table for rows other writers
//! keep inline, and stay NULL in ours.

/// How a column is sent in binary COPY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Int4,
    Int8,
    Timestamptz,
    Jsonb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColumnType,
}

const fn col(name: &'static str, ty: ColumnType) -> Column {
    Column { name, ty }
}

/// Every written column; `created_at` comes last because it is optional (see
/// [`column_list`]).
pub const COLUMNS: [Column; 18] = {
    use ColumnType::*;
    [
        col("timestamp", Timestamptz),
        col("trace_id", Text),
        col("span_id", Text),
        col("parent_span_id", Text),
        col("name", Text),
        col("kind", Int4),
        col("start_time_unix_nano", Int8),
        col("end_time_unix_nano", Int8),
        col("service_name", Text),
        col("scope_name", Text),
        col("scope_version", Text),
        col("status_code", Int4),
        col("status_message", Text),
        col("attributes", Jsonb),
        col("events", Jsonb),
        col("links", Jsonb),
        col("resource_id", Int8),
        col("created_at", Timestamptz),
    ]
};

/// How many columns a COPY names: all, or all but `created_at`.
pub(crate) const fn column_count(with_created_at: bool) -> usize {
    if with_created_at {
        COLUMNS.len()
    } else {
        COLUMNS.len() - 1
    }
}

/// The columns a COPY names, comma-separated: without `created_at`, the column default
/// (`now()`, the writing transaction's start) records the arrival.
pub fn column_list(with_created_at: bool) -> String {
    COLUMNS[..column_count(with_created_at)]
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_at_is_last_and_optional() {
        assert!(column_list(true).ends_with("links, resource_id, created_at"));
        assert!(column_list(false).ends_with(", resource_id"));
        assert!(column_list(false).starts_with("timestamp, trace_id, "));
    }
}
