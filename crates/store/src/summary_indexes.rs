//! The indexes of the summary relation, in one place: the materialized view, the
//! incremental table and its distributed form are built with exactly these, and a change
//! here changes the relation's marker so that it is rebuilt (the view swapped, the table
//! backfilled), as a changed row definition is.

/// One index of `otel_trace_summaries`, named `otel_trace_summaries_{suffix}`.
pub struct SummaryIndex {
    pub suffix: &'static str,
    pub unique: bool,
    /// What follows `ON relation`: the key columns and any INCLUDE.
    pub definition: &'static str,
}

/// `trace_id` first: it is unique, which `REFRESH ... CONCURRENTLY` and the drain's upsert
/// need, and the backfill creates it before the rows go in.
pub const INDEXES: &[SummaryIndex] = &[
    SummaryIndex {
        suffix: "trace_id",
        unique: true,
        definition: "(trace_id)",
    },
    // First pages by time; the root service rides along so that the group-by service
    // list of a time range is an index-only scan of that range, not of every trace kept.
    SummaryIndex {
        suffix: "ts",
        unique: false,
        definition: "(timestamp DESC) INCLUDE (root_service_name)",
    },
    SummaryIndex {
        suffix: "root_svc_ts",
        unique: false,
        definition: "(root_service_name, timestamp DESC)",
    },
    SummaryIndex {
        suffix: "duration",
        unique: false,
        definition: "(duration_ms DESC, trace_id DESC)",
    },
];

/// The unique `trace_id` index, which the incremental backfill builds before its rows.
pub fn unique_trace_id() -> &'static SummaryIndex {
    &INDEXES[0]
}

/// The secondary indexes, built after the rows (cheaper than maintaining them per row).
pub fn secondary() -> &'static [SummaryIndex] {
    &INDEXES[1..]
}

impl SummaryIndex {
    /// `CREATE [UNIQUE] INDEX [IF NOT EXISTS] {relation}_{suffix} ON {relation} ...;`
    pub fn create_sql(&self, relation: &str, if_not_exists: bool) -> String {
        format!(
            "CREATE {}INDEX {}{relation}_{} ON {relation} {};",
            if self.unique { "UNIQUE " } else { "" },
            if if_not_exists { "IF NOT EXISTS " } else { "" },
            self.suffix,
            self.definition
        )
    }
}

/// Every index of [`INDEXES`] on `relation`.
pub fn create_all_sql(relation: &str) -> String {
    INDEXES
        .iter()
        .map(|i| i.create_sql(relation, false))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Renames every index of `{from}_*` to `{to}_*`, for the swap of a rebuilt relation.
pub fn rename_all_sql(from: &str, to: &str) -> String {
    INDEXES
        .iter()
        .map(|i| format!("ALTER INDEX {from}_{0} RENAME TO {to}_{0};", i.suffix))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The whole index set as text, part of what the relation markers hash.
pub fn definition_text() -> String {
    INDEXES
        .iter()
        .map(|i| i.create_sql("r", false))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unique_index_comes_first_and_names_follow_the_relation() {
        assert!(unique_trace_id().unique);
        assert!(secondary().iter().all(|i| !i.unique));
        assert_eq!(
            unique_trace_id().create_sql("otel_trace_summaries_next", false),
            "CREATE UNIQUE INDEX otel_trace_summaries_next_trace_id ON otel_trace_summaries_next (trace_id);"
        );
        assert!(rename_all_sql("a_next", "a")
            .contains("ALTER INDEX a_next_root_svc_ts RENAME TO a_root_svc_ts;"));
    }
}
