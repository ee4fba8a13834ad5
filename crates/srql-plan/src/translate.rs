//! What `/translate` shows of a plan, in our terms and in upstream ServiceRadar's, so tools
//! written against either read it: bind values as `binds` (ours) and as typed `params`
//! (`{"t": type, "v": value}`, upstream's), `pagination`, and a `viz` hint (columns with
//! their types, and suggested renderings). Pure: the server adds source and freshness.

use serde_json::{json, Value};

use crate::plan::{Output, Plan};
use crate::render::render;
use crate::schema::{self, ColumnType};
use crate::sql::Param;

/// `sql`, `binds`, `params`, `pagination`, `viz` and `ignored_keys` of a plan compiled
/// with `cursor` (echoed in `pagination`).
pub fn translation(plan: &Plan, cursor: Option<&str>) -> Value {
    // The cursor's own direction once compiled, so a client sees how it will page.
    let direction = match &plan.output {
        Output::Rows { page, .. } => Some(page.direction.name()),
        Output::Aggregate { .. } => None,
    };
    let sql = render(plan);
    json!({
        "sql": sql.sql,
        "binds": sql.params,
        "params": sql.params.iter().map(typed_param).collect::<Vec<_>>(),
        "pagination": {
            "limit": plan.limit(),
            "cursor": cursor,
            "direction": direction,
            // Known only once the query has run: `/api/query` returns them.
            "next_cursor": Value::Null,
            "prev_cursor": Value::Null,
        },
        "viz": viz(plan),
        "ignored_keys": plan.ignored_keys,
    })
}

/// Upstream's bind parameter form: the PostgreSQL type beside the value.
fn typed_param(p: &Param) -> Value {
    let (t, v) = match p {
        Param::Text(v) => ("text", json!(v)),
        Param::TextArray(v) => ("text_array", json!(v)),
        Param::Int4(v) => ("int", json!(v)),
        Param::Int4Array(v) => ("int_array", json!(v)),
        Param::Int8(v) => ("bigint", json!(v)),
        Param::Int8Array(v) => ("bigint_array", json!(v)),
        Param::Float8(v) => ("float", json!(v)),
        Param::Float8Array(v) => ("float_array", json!(v)),
        Param::Timestamptz(v) => ("timestamptz", json!(v)),
    };
    json!({ "t": t, "v": v })
}

/// The JSON type a column's values have in `/api/query` results.
pub fn column_type_name(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Timestamptz => "timestamp",
        ColumnType::Text => "string",
        ColumnType::Int4 | ColumnType::Int8 => "integer",
        ColumnType::Float8 => "float",
        ColumnType::TextArray => "array",
        ColumnType::Jsonb => "json",
    }
}

fn viz(plan: &Plan) -> Value {
    let columns: Vec<Value> = match &plan.output {
        Output::Rows { columns, .. } => columns
            .iter()
            .map(|c| json!({ "name": c.name, "type": column_type_name(c.ty) }))
            .collect(),
        Output::Aggregate { keys, .. } => keys
            .iter()
            .map(|(name, ty)| json!({ "name": name, "type": column_type_name(*ty) }))
            .collect(),
    };
    let suggestions = match &plan.output {
        Output::Rows { .. } => vec![
            json!({ "kind": "table", "reason": format!("one row per {}", row_noun(plan)) }),
            json!({ "kind": "timeseries", "x": "timestamp", "reason": "rows carry a timestamp" }),
        ],
        Output::Aggregate { groups, keys, .. } if !groups.is_empty() => vec![
            json!({
                "kind": "table",
                "reason": format!("one row per group, at most {}", crate::MAX_GROUPS),
            }),
            json!({
                "kind": "bar",
                "x": groups[0].name,
                "y": keys[groups.len()].0,
                "reason": "groups ordered by their first aggregate",
            }),
        ],
        Output::Aggregate { .. } => vec![json!({
            "kind": "stat",
            "reason": "a single row of aggregate values",
        })],
    };
    json!({ "columns": columns, "suggestions": suggestions })
}

fn row_noun(plan: &Plan) -> &'static str {
    match schema::entity_name(plan.entity) {
        "traces" => "span",
        _ => "trace",
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    use super::typed_param;
    use crate::sql::Param;

    #[test]
    fn params_carry_their_type_beside_the_value() {
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        for (param, expected) in [
            (Param::Text("a".into()), json!({ "t": "text", "v": "a" })),
            (
                Param::TextArray(vec!["a".into()]),
                json!({ "t": "text_array", "v": ["a"] }),
            ),
            (Param::Int4(1), json!({ "t": "int", "v": 1 })),
            (
                Param::Int4Array(vec![1]),
                json!({ "t": "int_array", "v": [1] }),
            ),
            (Param::Int8(2), json!({ "t": "bigint", "v": 2 })),
            (
                Param::Int8Array(vec![2]),
                json!({ "t": "bigint_array", "v": [2] }),
            ),
            (Param::Float8(0.5), json!({ "t": "float", "v": 0.5 })),
            (
                Param::Float8Array(vec![0.5]),
                json!({ "t": "float_array", "v": [0.5] }),
            ),
            (
                Param::Timestamptz(at),
                json!({ "t": "timestamptz", "v": "2026-01-02T03:04:05Z" }),
            ),
        ] {
            assert_eq!(typed_param(&param), expected);
        }
    }
}
