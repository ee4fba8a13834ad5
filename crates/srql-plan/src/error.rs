use std::fmt;

use crate::direction::Direction;

/// Why a query could not be compiled. Every variant is the user's to fix (HTTP 400).
///
/// Errors tied to a token carry its byte offset in the query and display, like parse
/// errors, as `at position N: ...`, so a client can point at the token. Errors about the
/// request as a whole (no `in:`, the body's `limit`, the cursor) have no offset.
#[derive(Debug, Clone, PartialEq)]
pub enum CompileError {
    Parse(srql_lang::ParseError),
    MissingEntity,
    UnknownField {
        offset: usize,
        field: String,
        entity: &'static str,
        expected: Vec<&'static str>,
    },
    /// A value that does not fit the field's type, e.g. `status_code:abc`.
    WrongType {
        offset: usize,
        field: String,
        found: String,
        expected: &'static str,
    },
    /// A `%` pattern on a numeric field.
    PatternOnNumber {
        offset: usize,
        field: String,
    },
    /// `>`, `<`, ... on a text field.
    CompareOnText {
        offset: usize,
        field: String,
    },
    /// `:*` (the key exists) on a field that is not an attribute key.
    ExistsOnField {
        offset: usize,
        field: String,
    },
    UnknownSort {
        offset: usize,
        field: String,
        entity: &'static str,
        expected: Vec<&'static str>,
    },
    /// The resolved `time:` range is reversed or too long; `message` states the bounds.
    Range {
        offset: usize,
        message: String,
    },
    /// The request body's `limit` is below 1.
    Limit {
        found: i64,
    },
    StatsAndRollup,
    /// A `stats:` expression over a field that is not numeric or does not exist.
    StatsField {
        field: String,
    },
    /// A `stats:` comparison value that does not fit its field's type.
    StatsValue {
        field: String,
        found: String,
        expected: &'static str,
    },
    UnknownRollup {
        name: String,
        entity: &'static str,
    },
    /// A `stats: ... by` key that is not a groupable field of the entity.
    UnknownGroupKey {
        offset: usize,
        field: String,
        entity: &'static str,
        expected: Vec<&'static str>,
    },
    /// A `by` key with one value per trace or span (`trace_id`, ...).
    GroupKeyPerRow {
        offset: usize,
        field: String,
    },
    /// A `by` key naming a column the answer already has (another key or an alias).
    GroupColumnTwice {
        offset: usize,
        name: &'static str,
    },
    Cursor(CursorError),
    /// The body's `direction` disagrees with the direction the cursor pages in.
    DirectionContradictsCursor {
        cursor: Direction,
    },
    /// The request pinned the summaries, which cannot answer this query exactly.
    SummariesUnusable {
        why: String,
    },
}

/// Why a cursor was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum CursorError {
    /// Not a cursor this service made, or tampered with.
    Invalid,
    /// Made for another sort order.
    OtherSort { cursor: String, query: String },
    /// Made before cursors carried their direction.
    OlderVersion,
}

impl CompileError {
    /// Byte offset in the query text of the token the error is about, when there is one.
    pub fn offset(&self) -> Option<usize> {
        match self {
            CompileError::Parse(e) => Some(e.offset()),
            CompileError::UnknownField { offset, .. }
            | CompileError::WrongType { offset, .. }
            | CompileError::PatternOnNumber { offset, .. }
            | CompileError::CompareOnText { offset, .. }
            | CompileError::ExistsOnField { offset, .. }
            | CompileError::UnknownSort { offset, .. }
            | CompileError::Range { offset, .. }
            | CompileError::UnknownGroupKey { offset, .. }
            | CompileError::GroupKeyPerRow { offset, .. }
            | CompileError::GroupColumnTwice { offset, .. } => Some(*offset),
            _ => None,
        }
    }

    /// The message without the position.
    pub fn message(&self) -> String {
        match self {
            CompileError::Parse(e) => e.message().to_string(),
            CompileError::MissingEntity => {
                "missing `in:`: expected `in:otel_trace_summaries` or `in:traces`".into()
            }
            CompileError::UnknownField {
                field,
                entity,
                expected,
                ..
            } => format!(
                "unknown field `{field}` for {entity}: expected one of {}",
                expected.join(", ")
            ),
            CompileError::WrongType {
                field,
                found,
                expected,
                ..
            }
            | CompileError::StatsValue {
                field,
                found,
                expected,
            } => format!(
                "`{field}` expects {expected}, found `{}`",
                truncate(found, 40)
            ),
            CompileError::PatternOnNumber { field, .. } => {
                format!("`{field}` is numeric: `%` patterns apply to text fields only")
            }
            CompileError::CompareOnText { field, .. } => {
                format!("`{field}` is text: comparisons like `>` apply to numeric fields only")
            }
            CompileError::ExistsOnField { field, .. } => format!(
                "`{field}` is not an attribute key: `:*` asks whether an attribute key exists"
            ),
            CompileError::UnknownSort {
                field,
                entity,
                expected,
                ..
            } => format!(
                "cannot sort {entity} by `{field}`: expected one of {}",
                expected.join(", ")
            ),
            CompileError::Range { message, .. } => message.clone(),
            CompileError::Limit { found } => {
                format!("`limit` must be a positive integer, found {found}")
            }
            CompileError::StatsAndRollup => {
                "use either `stats:` or `rollup_stats:`, not both".into()
            }
            CompileError::StatsField { field } => format!(
                "`{field}` cannot be used in `stats:`: expected a numeric field such as status_code or duration_ms"
            ),
            CompileError::UnknownRollup { name, entity } => format!(
                "unknown rollup `{name}` for {entity}: expected `rollup_stats:summary` with `in:otel_traces`"
            ),
            CompileError::UnknownGroupKey {
                field,
                entity,
                expected,
                ..
            } => format!(
                "cannot group {entity} by `{field}`: expected one of {}",
                expected.join(", ")
            ),
            CompileError::GroupKeyPerRow { field, .. } => format!(
                "cannot group by `{field}`: it has one value per row, so every group would be one row; filter on it instead"
            ),
            CompileError::GroupColumnTwice { name, .. } => format!(
                "`{name}` is already a column of this answer (a `by` key or an alias)"
            ),
            CompileError::Cursor(CursorError::Invalid) => {
                "invalid cursor: pass back a `next_cursor` or `prev_cursor` unchanged".into()
            }
            CompileError::Cursor(CursorError::OtherSort { cursor, query }) => format!(
                "cursor belongs to sort `{cursor}`, not `{query}`: start again without a cursor"
            ),
            CompileError::Cursor(CursorError::OlderVersion) => {
                "cursor from an older version of this service: start again without a cursor"
                    .into()
            }
            CompileError::DirectionContradictsCursor { cursor } => format!(
                "`direction` contradicts the cursor, which pages `{}`: pass the cursor without `direction`",
                cursor.name()
            ),
            CompileError::SummariesUnusable { why } => {
                format!("summaries requested but unusable: {why}")
            }
        }
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.offset() {
            Some(offset) => write!(f, "at position {offset}: {}", self.message()),
            None => f.write_str(&self.message()),
        }
    }
}

impl std::error::Error for CompileError {}

impl From<srql_lang::ParseError> for CompileError {
    fn from(e: srql_lang::ParseError) -> Self {
        CompileError::Parse(e)
    }
}

impl From<CursorError> for CompileError {
    fn from(e: CursorError) -> Self {
        CompileError::Cursor(e)
    }
}

/// A user value cut for quoting back: a 10 kB value would bury the point.
fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}
