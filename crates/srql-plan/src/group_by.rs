//! `stats:"... by KEY[, KEY]"`: which fields may be group keys, how a grouped answer is
//! ordered and how many groups it holds.
//!
//! Keys are named by the entity's filter fields ([`crate::schema`]), so their SQL comes from
//! the one allow-list; this module only says which of those fields make sensible groups.

use srql_lang::Entity;

use crate::error::CompileError;
use crate::schema::{self, ColumnType, Field, FieldKind};
use crate::sql::{Param, SqlBuilder};

/// Most groups one answer holds. The groups are ordered by the first aggregate, largest
/// first, so a cut answer keeps the biggest groups; `x-srql-groups-truncated` says so.
pub const MAX_GROUPS: u32 = 1000;

/// Fields with few distinct values: the lists and cards a UI shows (services, operations).
const SUMMARY_KEYS: &[&str] = &[
    "root_service_name",
    "root_span_name",
    "root_span_kind",
    "status_code",
];
const SPAN_KEYS: &[&str] = &[
    "service_name",
    "service.name",
    "name",
    "span_name",
    "kind",
    "span_kind",
    "status_code",
    "scope_name",
    "scope_version",
    "service_version",
    "service_instance",
];

/// One value per trace or span: as many groups as rows, which the group bound would cut
/// arbitrarily. Named apart from other refusals so the message says why.
const ONE_PER_ROW: &[&str] = &["trace_id", "span_id", "parent_span_id", "root_span_id"];

fn keys(entity: Entity) -> &'static [&'static str] {
    match entity {
        Entity::TraceSummaries => SUMMARY_KEYS,
        Entity::Traces => SPAN_KEYS,
    }
}

/// The fields of `by`, checked against the allow-list above.
pub(crate) fn resolve(
    entity: Entity,
    by: &[srql_lang::GroupKey],
    aliases: &[&str],
) -> Result<Vec<Field>, CompileError> {
    let mut fields = Vec::with_capacity(by.len());
    for key in by {
        let name = key.field.as_str();
        if ONE_PER_ROW.contains(&name) {
            return Err(CompileError::GroupKeyPerRow {
                offset: key.offset,
                field: key.field.clone(),
            });
        }
        let field = keys(entity)
            .contains(&name)
            .then(|| schema::filter_field(entity, name))
            .flatten()
            .ok_or_else(|| CompileError::UnknownGroupKey {
                offset: key.offset,
                field: key.field.clone(),
                entity: schema::entity_name(entity),
                expected: keys(entity).to_vec(),
            })?;
        // `service_name` and `service.name` are one field, and a key's JSON name must not
        // be an alias's too.
        if fields.iter().any(|f: &Field| f.name == field.name) || aliases.contains(&field.name) {
            return Err(CompileError::GroupColumnTwice {
                offset: key.offset,
                name: field.name,
            });
        }
        fields.push(field);
    }
    Ok(fields)
}

/// The JSON type of a key's values.
pub(crate) fn column_type(field: &Field) -> ColumnType {
    match field.kind {
        FieldKind::Text => ColumnType::Text,
        FieldKind::Int4 => ColumnType::Int4,
        FieldKind::Int8 => ColumnType::Int8,
        FieldKind::Float8 => ColumnType::Float8,
        FieldKind::ServiceSet => ColumnType::TextArray,
    }
}

/// Select-list items for the keys, each under its field's canonical name.
pub(crate) fn select_keys(groups: &[Field]) -> Vec<String> {
    groups
        .iter()
        .map(|f| format!("{} AS \"{}\"", f.sql, f.name))
        .collect()
}

/// `GROUP BY`, `ORDER BY` and `LIMIT` after a select list of the keys then the aggregates:
/// the first aggregate descending, then the keys (NULL last), so the order is total and
/// the same on every path. One group more than [`MAX_GROUPS`] tells that some were cut.
pub(crate) fn tail(b: &mut SqlBuilder, groups: &[Field]) -> String {
    let positions: Vec<String> = (1..=groups.len()).map(|i| i.to_string()).collect();
    let first_aggregate = groups.len() + 1;
    let fetch = b.bind(Param::Int8(i64::from(MAX_GROUPS) + 1));
    format!(
        "\nGROUP BY {keys}\nORDER BY {first_aggregate} DESC, {keys}\nLIMIT {fetch}",
        keys = positions.join(", ")
    )
}
