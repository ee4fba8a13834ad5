//! Runs a compiled plan and shapes the rows into the API's JSON.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};
use srql_plan::schema::{Column, ColumnType};
use srql_plan::{Direction, Output, Param, Plan};
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row};

use crate::db::DbError;

/// What `/api/query` returns, before serialisation.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct QueryResult {
    pub results: Vec<Value>,
    pub pagination: Pagination,
    /// `stats: ... by` had more groups than [`srql_plan::MAX_GROUPS`]: the API says so in
    /// a header, keeping the body's shape.
    #[serde(skip)]
    pub groups_truncated: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Pagination {
    pub next_cursor: Option<String>,
    pub prev_cursor: Option<String>,
    pub limit: Option<u32>,
}

pub fn to_sql(p: &Param) -> &(dyn ToSql + Sync) {
    match p {
        Param::Text(v) => v,
        Param::TextArray(v) => v,
        Param::Int4(v) => v,
        Param::Int4Array(v) => v,
        Param::Int8(v) => v,
        Param::Int8Array(v) => v,
        Param::Float8(v) => v,
        Param::Float8Array(v) => v,
        Param::Timestamptz(v) => v,
    }
}

/// Runs `plan` on `client`, a session outside any transaction. A plan whose extent is
/// read first ([`with_extent_read`]) runs both statements in one read-only
/// `REPEATABLE READ` transaction: the bounds and the query see the same spans, so a span
/// committed in between can neither fall outside bounds read before it nor make a trace
/// reach further than the query was rendered for.
pub async fn run(client: &impl GenericClient, plan: &Plan) -> Result<QueryResult, DbError> {
    if srql_plan::extent_query(plan).is_none() {
        return run_rendered(client, plan).await;
    }
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await?;
    let result = async {
        let plan = with_extent_read(client, plan).await?;
        run_rendered(client, &plan).await
    }
    .await;
    // A failed statement leaves the transaction aborted: end it either way, so the
    // session goes back to its pool usable.
    let end = client
        .batch_execute(if result.is_ok() { "COMMIT" } else { "ROLLBACK" })
        .await;
    let result = result?;
    end?;
    Ok(result)
}

async fn run_rendered(client: &impl GenericClient, plan: &Plan) -> Result<QueryResult, DbError> {
    let sql = srql_plan::render(plan);
    let params: Vec<&(dyn ToSql + Sync)> = sql.params.iter().map(to_sql).collect();
    let rows = client.query(sql.sql.as_str(), &params).await?;
    Ok(shape(plan, &rows))
}

/// `plan` as [`run`] renders it: a lookup by trace_id with its traces' extent read first,
/// and span conditions on the summaries of a range, or the widened on-the-fly
/// aggregation of a range, with the range's window read first
/// (`srql_plan::extent_query`), so that it is planned with the bounds as values and the
/// days outside them are never planned; any other plan as it is.
pub async fn with_extent_read<'p>(
    client: &impl GenericClient,
    plan: &'p Plan,
) -> Result<Cow<'p, Plan>, DbError> {
    let Some(q) = srql_plan::extent_query(plan) else {
        return Ok(Cow::Borrowed(plan));
    };
    let params: Vec<&(dyn ToSql + Sync)> = q.params.iter().map(to_sql).collect();
    let row = client.query_one(q.sql.as_str(), &params).await?;
    Ok(Cow::Owned(plan.clone().with_extent(
        srql_plan::ExtentBounds {
            lo: row.get(0),
            hi: row.get(1),
            // A range's window also counts its long traces; a lookup's extent does not.
            long_traces: (row.len() > 2).then(|| row.get(2)),
        },
    )))
}

/// Rows to API JSON, with cursors for keyset pagination.
pub fn shape(plan: &Plan, rows: &[Row]) -> QueryResult {
    match &plan.output {
        Output::Aggregate {
            keys,
            limit,
            groups,
            ..
        } => {
            // One row without groups; with them, one row per group and one more when some
            // were cut.
            let shown = srql_plan::MAX_GROUPS as usize;
            let results = rows
                .iter()
                .take(shown)
                .map(|row| {
                    let mut m = Map::new();
                    for (i, (name, ty)) in keys.iter().enumerate() {
                        // A group key's NULL is a group of its own (e.g. traces without a
                        // root span), not a zero.
                        m.insert(name.clone(), cell(row, i, *ty, i >= groups.len()));
                    }
                    Value::Object(m)
                })
                .collect();
            QueryResult {
                results,
                pagination: Pagination {
                    next_cursor: None,
                    prev_cursor: None,
                    limit: Some(*limit),
                },
                groups_truncated: rows.len() > shown,
            }
        }
        Output::Rows { columns, page } => {
            let limit = page.limit as usize;
            let more = rows.len() > limit;
            let mut rows: Vec<&Row> = rows.iter().take(limit).collect();
            if page.direction == Direction::Prev {
                rows.reverse();
            }
            // Each cursor says which way it pages, so a client may pass either back alone.
            let cursor_of = |direction: Direction| {
                move |row: &&Row| {
                    let values = page
                        .keys
                        .iter()
                        .enumerate()
                        .map(|(i, (k, _))| cell(row, columns.len() + i, k.ty, false))
                        .collect();
                    page.cursor(direction, values)
                }
            };
            let (next_of, prev_of) = (cursor_of(Direction::Next), cursor_of(Direction::Prev));
            let (next, prev) = match page.direction {
                Direction::Next => (
                    if more { rows.last().map(next_of) } else { None },
                    if page.from_cursor {
                        rows.first().map(prev_of)
                    } else {
                        None
                    },
                ),
                Direction::Prev => (
                    rows.last().map(next_of),
                    if more {
                        rows.first().map(prev_of)
                    } else {
                        None
                    },
                ),
            };
            QueryResult {
                results: rows.iter().map(|r| row_object(r, columns)).collect(),
                pagination: Pagination {
                    next_cursor: next,
                    prev_cursor: prev,
                    limit: Some(page.limit),
                },
                groups_truncated: false,
            }
        }
    }
}

fn row_object(row: &Row, columns: &[Column]) -> Value {
    let mut m = Map::with_capacity(columns.len());
    for (i, c) in columns.iter().enumerate() {
        m.insert(c.name.to_string(), cell(row, i, c.ty, c.null_as_zero));
    }
    Value::Object(m)
}

/// RFC 3339 in UTC with microseconds: PostgreSQL's precision, so cursors round-trip exactly.
pub fn timestamp_json(t: DateTime<Utc>) -> Value {
    Value::String(t.to_rfc3339_opts(SecondsFormat::Micros, true))
}

fn cell(row: &Row, i: usize, ty: ColumnType, null_as_zero: bool) -> Value {
    let v = match ty {
        ColumnType::Timestamptz => row.get::<_, Option<DateTime<Utc>>>(i).map(timestamp_json),
        ColumnType::Text => row.get::<_, Option<String>>(i).map(Value::String),
        ColumnType::Int4 => row.get::<_, Option<i32>>(i).map(Value::from),
        ColumnType::Int8 => row.get::<_, Option<i64>>(i).map(Value::from),
        ColumnType::Float8 => row.get::<_, Option<f64>>(i).map(Value::from),
        ColumnType::TextArray => row.get::<_, Option<Vec<String>>>(i).map(Value::from),
        ColumnType::Jsonb => row.get::<_, Option<Value>>(i),
    };
    match (v, null_as_zero, ty) {
        (Some(v), _, _) => v,
        (None, true, ColumnType::TextArray) => Value::Array(Vec::new()),
        (None, true, ColumnType::Float8) => Value::from(0.0),
        (None, true, _) => Value::from(0),
        (None, false, _) => Value::Null,
    }
}
