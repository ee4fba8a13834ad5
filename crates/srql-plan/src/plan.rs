//! Typed query + catalog -> plan: which relation answers, why, and the SQL to run.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use srql_lang::{CompareOp, Entity, Filter, FilterValue, Query, StatFunc};

use crate::catalog::{Catalog, SummaryKind, SummaryState};
use crate::cursor;
use crate::error::{plan_err, CompileError};
use crate::schema::{self, Column, ColumnType, Field, FieldKind, SortField};
use crate::sql::{Param, SqlBuilder, SqlQuery};
use crate::summary_sql;
use crate::time_range::{self, TimeRange};

/// The HTTP request body, less transport concerns.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    pub query: &'a str,
    pub limit: Option<i64>,
    pub cursor: Option<&'a str>,
    /// `None`: the cursor's own direction (`next` without a cursor). Given with a cursor,
    /// it must agree with the cursor's.
    pub direction: Option<Direction>,
    pub source: SourcePreference,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Next,
    Prev,
}

/// Lets tests and benchmarks pin the summary path or the on-the-fly path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourcePreference {
    #[default]
    Auto,
    Summaries,
    OnTheFly,
}

/// Which relation answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "relation")]
pub enum Source {
    /// Precomputed trace summaries.
    Summaries(SummaryKind),
    /// Summaries aggregated from `otel_traces` for this query.
    OnTheFly,
    /// Span rows of `otel_traces`.
    Spans,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Next => "next",
            Direction::Prev => "prev",
        }
    }
}

impl Source {
    /// Short name for headers and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Source::Summaries(SummaryKind::MaterializedView) => "materialized_view",
            Source::Summaries(SummaryKind::Table) => "summary_table",
            Source::OnTheFly => "on_the_fly",
            Source::Spans => "spans",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub entity: Entity,
    pub source: Source,
    /// Why this source: shown by `/translate`.
    pub reason: String,
    pub sql: SqlQuery,
    pub output: Output,
    /// Upstream keys the query used that change nothing here, for the API to report.
    pub ignored_keys: Vec<String>,
}

impl Plan {
    /// The page size for rows; for aggregates, the limit the request resolved to
    /// (reported, as upstream does, though an aggregate is one row).
    pub fn limit(&self) -> u32 {
        match &self.output {
            Output::Rows { page, .. } => page.limit,
            Output::Aggregate { limit, .. } => *limit,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Row objects with `columns` (in order), followed in SQL by one hidden column per
    /// page key, which cursors are made from.
    Rows {
        columns: &'static [Column],
        page: Page,
    },
    /// A single object with one key per alias.
    Aggregate {
        keys: Vec<(String, ColumnType)>,
        limit: u32,
    },
}

/// Keyset pagination of a row query.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub limit: u32,
    /// Sort keys then tie-breakers, with their direction as requested.
    pub keys: Vec<(SortField, bool)>,
    pub direction: Direction,
    /// The request came with a cursor, so a page exists on the other side.
    pub from_cursor: bool,
}

impl Page {
    /// Identifies the ordering a cursor belongs to.
    pub fn signature(&self) -> String {
        self.keys
            .iter()
            .map(|(k, desc)| format!("{}:{}", k.name, if *desc { "desc" } else { "asc" }))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn key_types(&self) -> Vec<ColumnType> {
        self.keys.iter().map(|(k, _)| k.ty).collect()
    }

    /// An opaque cursor that pages in `direction` from a row whose hidden key columns
    /// hold `values`.
    pub fn cursor(&self, direction: Direction, values: Vec<serde_json::Value>) -> String {
        cursor::encode(&self.signature(), direction, values)
    }
}

/// Parse, plan and generate SQL in one go.
pub fn compile(
    req: &Request<'_>,
    catalog: &Catalog,
    limits: &srql_lang::Limits,
    now: DateTime<Utc>,
) -> Result<Plan, CompileError> {
    let query = srql_lang::parse(req.query, limits)?;
    plan(&query, req, catalog, now)
}

pub fn plan(
    query: &Query,
    req: &Request<'_>,
    catalog: &Catalog,
    now: DateTime<Utc>,
) -> Result<Plan, CompileError> {
    let entity = query.entity.ok_or_else(|| {
        plan_err("missing `in:`: expected `in:otel_trace_summaries` or `in:traces`")
    })?;
    let mut range = time_range::resolve(query.time.as_ref(), now)?;
    if let (None, Some(retention)) = (range.start, catalog.retention) {
        range.start = Some(now - retention);
    }
    let filters = query
        .filters
        .iter()
        .map(|f| resolve_filter(entity, f))
        .collect::<Result<Vec<_>, _>>()?;
    if query.stats.is_some() && query.rollup_stats.is_some() {
        return Err(plan_err("use either `stats:` or `rollup_stats:`, not both"));
    }
    let (source, reason) = choose_source(entity, &range, &filters, catalog, req.source)?;
    let mut b = SqlBuilder::default();
    let from = from_clause(&mut b, source, &range, &filters);
    let mut conds = Vec::new();
    time_conditions(&mut b, &range, &mut conds);
    for f in &filters {
        conds.push(filter_sql(&mut b, f));
    }

    let limit = limit(query, req, catalog)?;
    let ignored_keys = query.ignored_keys.clone();
    if let Some(name) = &query.rollup_stats {
        let plan = rollup(b, entity, name, from, conds, source, reason, limit)?;
        return Ok(Plan {
            ignored_keys,
            ..plan
        });
    }
    if let Some(stats) = &query.stats {
        let plan = aggregate(b, entity, stats, from, conds, source, reason, limit)?;
        return Ok(Plan {
            ignored_keys,
            ..plan
        });
    }

    let mut page = page(entity, query, req, limit)?;
    if let Some(c) = req.cursor {
        let (direction, values) = cursor::decode(c, &page.signature(), &page.key_types())?;
        if req.direction.is_some_and(|asked| asked != direction) {
            return Err(plan_err(format!(
                "`direction` contradicts the cursor, which pages `{}`: pass the cursor without `direction`",
                direction.name()
            )));
        }
        page.direction = direction;
        conds.push(keyset_condition(&mut b, &page, values));
    }
    let columns = schema::columns(entity);
    let mut select: Vec<String> = columns.iter().map(|c| column_sql(entity, c)).collect();
    for (i, (k, _)) in page.keys.iter().enumerate() {
        select.push(format!("{} AS page_key_{i}", k.sql));
    }
    let order = page
        .keys
        .iter()
        .map(|(k, desc)| {
            let desc = *desc != (page.direction == Direction::Prev);
            format!("{} {}", k.sql, if desc { "DESC" } else { "ASC" })
        })
        .collect::<Vec<_>>()
        .join(", ");
    // One row more than the page tells whether another page exists.
    let fetch = b.bind(Param::Int8(i64::from(page.limit) + 1));
    let sql = format!(
        "{from}\nSELECT {}\nFROM {}{}\nORDER BY {order}\nLIMIT {fetch}",
        select.join(", "),
        relation_name(source),
        where_clause(&conds),
    );
    Ok(Plan {
        entity,
        source,
        reason,
        sql: b.finish(sql.trim_start().to_string()),
        output: Output::Rows { columns, page },
        ignored_keys,
    })
}

/// A filter checked against the entity's allow-list, its value typed.
#[derive(Debug, Clone)]
struct TypedFilter {
    field: Field,
    negated: bool,
    value: TypedValue,
}

#[derive(Debug, Clone)]
enum TypedValue {
    Eq(Param),
    Like(String),
    In(Param),
    Compare(CompareOp, Param),
}

fn resolve_filter(entity: Entity, f: &Filter) -> Result<TypedFilter, CompileError> {
    let field = schema::filter_field(entity, &f.field).ok_or_else(|| {
        plan_err(format!(
            "unknown field `{}` for {}: expected one of {}",
            f.field,
            schema::entity_name(entity),
            schema::filter_names(entity).join(", ")
        ))
    })?;
    let value = match &f.value {
        FilterValue::Scalar { value, like: true } => {
            if !matches!(field.kind, FieldKind::Text | FieldKind::ServiceSet) {
                return Err(plan_err(format!(
                    "`{}` is numeric: `%` patterns apply to text fields only",
                    f.field
                )));
            }
            TypedValue::Like(value.clone())
        }
        FilterValue::Scalar { value, .. } => TypedValue::Eq(scalar(&field, &f.field, value)?),
        FilterValue::List(items) => TypedValue::In(list(&field, &f.field, items)?),
        FilterValue::Compare { op, value } => {
            if matches!(field.kind, FieldKind::Text | FieldKind::ServiceSet) {
                return Err(plan_err(format!(
                    "`{}` is text: comparisons like `>` apply to numeric fields only",
                    f.field
                )));
            }
            TypedValue::Compare(*op, scalar(&field, &f.field, value)?)
        }
    };
    Ok(TypedFilter {
        field,
        negated: f.negated,
        value,
    })
}

fn scalar(field: &Field, written: &str, v: &str) -> Result<Param, CompileError> {
    Ok(match field.kind {
        FieldKind::Text | FieldKind::ServiceSet => Param::Text(v.to_string()),
        FieldKind::Int4 => Param::Int4(number(written, v, "an integer")?),
        FieldKind::Int8 => Param::Int8(number(written, v, "an integer")?),
        FieldKind::Float8 => Param::Float8(finite(written, v)?),
    })
}

fn list(field: &Field, written: &str, items: &[String]) -> Result<Param, CompileError> {
    fn each<T>(
        items: &[String],
        f: impl Fn(&str) -> Result<T, CompileError>,
    ) -> Result<Vec<T>, CompileError> {
        items.iter().map(|v| f(v)).collect()
    }
    Ok(match field.kind {
        FieldKind::Text | FieldKind::ServiceSet => Param::TextArray(items.to_vec()),
        FieldKind::Int4 => Param::Int4Array(each(items, |v| number(written, v, "an integer"))?),
        FieldKind::Int8 => Param::Int8Array(each(items, |v| number(written, v, "an integer"))?),
        FieldKind::Float8 => Param::Float8Array(each(items, |v| finite(written, v))?),
    })
}

fn number<T: std::str::FromStr>(written: &str, v: &str, what: &str) -> Result<T, CompileError> {
    v.parse().map_err(|_| wrong_type(written, v, what))
}

fn finite(written: &str, v: &str) -> Result<f64, CompileError> {
    let x: f64 = number(written, v, "a number")?;
    if x.is_finite() {
        Ok(x)
    } else {
        Err(wrong_type(written, v, "a finite number"))
    }
}

fn wrong_type(written: &str, v: &str, what: &str) -> CompileError {
    plan_err(format!(
        "`{written}` expects {what}, found `{}`",
        truncate(v, 40)
    ))
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// A positive `trace_id:` equality or list: the query names its traces.
fn trace_id_lookup(filters: &[TypedFilter]) -> Option<&TypedFilter> {
    filters.iter().find(|f| {
        f.field.name == "trace_id"
            && !f.negated
            && matches!(f.value, TypedValue::Eq(_) | TypedValue::In(_))
    })
}

fn choose_source(
    entity: Entity,
    range: &TimeRange,
    filters: &[TypedFilter],
    catalog: &Catalog,
    pref: SourcePreference,
) -> Result<(Source, String), CompileError> {
    if entity == Entity::Traces {
        return Ok((Source::Spans, "span rows are read from otel_traces".into()));
    }
    let summaries = summaries_usable(range, filters, catalog);
    match (pref, summaries) {
        (SourcePreference::OnTheFly, _) => {
            Ok((Source::OnTheFly, "on-the-fly aggregation requested".into()))
        }
        (SourcePreference::Summaries, Ok(kind)) => {
            Ok((Source::Summaries(kind), "summaries requested".into()))
        }
        (SourcePreference::Summaries, Err(why)) => {
            Err(plan_err(format!("summaries requested but unusable: {why}")))
        }
        (SourcePreference::Auto, Ok(kind)) => Ok((
            Source::Summaries(kind),
            "the summaries cover the requested range".into(),
        )),
        (SourcePreference::Auto, Err(why)) => Ok((Source::OnTheFly, why)),
    }
}

/// The summary relation to read, or why it cannot answer this query exactly.
fn summaries_usable(
    range: &TimeRange,
    filters: &[TypedFilter],
    catalog: &Catalog,
) -> Result<SummaryKind, String> {
    let (kind, covers_from) = match &catalog.summaries {
        SummaryState::Missing => return Err("the summary relation does not exist".into()),
        SummaryState::Unpopulated { .. } => {
            return Err("the summary relation is not populated yet".into())
        }
        SummaryState::Ready {
            kind, covers_from, ..
        } => (*kind, *covers_from),
    };
    if trace_id_lookup(filters).is_some() {
        return Err(
            "lookup by trace_id: aggregated from its spans by index, so traces newer than the summaries are found"
                .into(),
        );
    }
    match range.start {
        Some(start) if start < covers_from => Err(format!(
            "the range starts before the summary window (which begins {})",
            covers_from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )),
        None => Err("the query has no start bound and span retention is unknown".into()),
        _ => Ok(kind),
    }
}

/// `WITH` clause for the on-the-fly path, empty otherwise.
fn from_clause(
    b: &mut SqlBuilder,
    source: Source,
    range: &TimeRange,
    filters: &[TypedFilter],
) -> String {
    if source != Source::OnTheFly {
        return String::new();
    }
    // Only traces with a span in the range can have their latest span in it, and a
    // trace's row is aggregated over all its spans, wherever they fall.
    let span_filter = if let Some(lookup) = trace_id_lookup(filters) {
        Some(filter_sql(b, lookup))
    } else {
        let mut conds = Vec::new();
        time_conditions(b, range, &mut conds);
        (!conds.is_empty()).then(|| {
            format!(
                "trace_id IN (SELECT trace_id FROM otel_traces WHERE {})",
                conds.join(" AND ")
            )
        })
    };
    format!(
        "WITH trace_summaries AS (\n  {}\n)",
        summary_sql::aggregate_query(span_filter.as_deref())
    )
}

fn relation_name(source: Source) -> &'static str {
    match source {
        Source::Summaries(_) => "otel_trace_summaries",
        Source::OnTheFly => "trace_summaries",
        Source::Spans => "otel_traces",
    }
}

fn column_sql(entity: Entity, c: &Column) -> String {
    match (entity, c.name) {
        (Entity::Traces, "duration_ms") => format!("{} AS duration_ms", schema::SPAN_DURATION_MS),
        _ => c.name.to_string(),
    }
}

fn time_conditions(b: &mut SqlBuilder, range: &TimeRange, conds: &mut Vec<String>) {
    if let Some(s) = range.start {
        conds.push(format!("timestamp >= {}", b.bind(Param::Timestamptz(s))));
    }
    if let Some(e) = range.end {
        conds.push(format!("timestamp <= {}", b.bind(Param::Timestamptz(e))));
    }
}

fn where_clause(conds: &[String]) -> String {
    if conds.is_empty() {
        String::new()
    } else {
        format!("\nWHERE {}", conds.join("\n  AND "))
    }
}

fn filter_sql(b: &mut SqlBuilder, f: &TypedFilter) -> String {
    let col = f.field.sql;
    let positive = match (&f.value, f.field.kind) {
        (TypedValue::Eq(p), FieldKind::ServiceSet) => {
            let Param::Text(s) = p else {
                unreachable!("service_set values are text")
            };
            format!("{col} @> {}", b.bind(Param::TextArray(vec![s.clone()])))
        }
        (TypedValue::In(p), FieldKind::ServiceSet) => format!("{col} && {}", b.bind(p.clone())),
        (TypedValue::Like(p), FieldKind::ServiceSet) => format!(
            "EXISTS (SELECT 1 FROM unnest({col}) AS s(name) WHERE s.name ILIKE {})",
            b.bind(Param::Text(p.clone()))
        ),
        (TypedValue::Eq(p), _) => format!("{col} = {}", b.bind(p.clone())),
        (TypedValue::Like(p), _) => format!("{col} ILIKE {}", b.bind(Param::Text(p.clone()))),
        (TypedValue::In(p), _) => format!("{col} = ANY({})", b.bind(p.clone())),
        (TypedValue::Compare(op, p), _) => {
            format!("{col} {} {}", op_sql(*op), b.bind(p.clone()))
        }
    };
    if f.negated {
        // NULL counts as "not equal": `!root_service_name:x` keeps traces without a root.
        format!("({positive}) IS NOT TRUE")
    } else {
        positive
    }
}

fn op_sql(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        CompareOp::Eq => "=",
        CompareOp::Ne => "<>",
    }
}

/// The body's limit, else the query's, else the default; clamped to the maximum.
/// `limit:0` gives one row, as upstream does; a body limit below 1 is a mistake.
fn limit(query: &Query, req: &Request<'_>, catalog: &Catalog) -> Result<u32, CompileError> {
    let limit = match (req.limit, query.limit) {
        (Some(n), _) if n < 1 => {
            return Err(plan_err(format!(
                "`limit` must be a positive integer, found {n}"
            )))
        }
        (Some(n), _) => n,
        (None, Some(n)) => i64::from(n.max(1)),
        (None, None) => i64::from(catalog.default_limit),
    };
    Ok(u32::try_from(limit.min(i64::from(catalog.max_limit))).unwrap_or(catalog.max_limit))
}

/// Sort keys and page size; the direction is the request's until a cursor says otherwise.
fn page(
    entity: Entity,
    query: &Query,
    req: &Request<'_>,
    limit: u32,
) -> Result<Page, CompileError> {
    let mut keys: Vec<(SortField, bool)> = Vec::new();
    for k in &query.sort {
        let field = schema::sort_field(entity, &k.field).ok_or_else(|| {
            plan_err(format!(
                "cannot sort {} by `{}`: expected one of {}",
                schema::entity_name(entity),
                k.field,
                schema::sort_names(entity).join(", ")
            ))
        })?;
        if !keys.iter().any(|(f, _)| f.name == field.name) {
            keys.push((field, k.descending));
        }
    }
    if keys.is_empty() {
        let ts =
            schema::sort_field(entity, "timestamp").ok_or_else(|| plan_err("no default sort"))?;
        keys.push((ts, true));
    }
    let tie_desc = keys[0].1;
    for t in schema::tie_breakers(entity) {
        if !keys.iter().any(|(f, _)| f.name == t.name) {
            keys.push((*t, tie_desc));
        }
    }
    Ok(Page {
        limit,
        keys,
        direction: req.direction.unwrap_or_default(),
        from_cursor: req.cursor.is_some(),
    })
}

/// Rows strictly after the cursor row in the order being read.
fn keyset_condition(b: &mut SqlBuilder, page: &Page, values: Vec<Param>) -> String {
    let flip = page.direction == Direction::Prev;
    let keys: Vec<(&str, bool, String)> = page
        .keys
        .iter()
        .zip(values)
        .map(|((k, desc), v)| (k.sql, *desc != flip, b.bind(v)))
        .collect();
    let first_desc = keys[0].1;
    if keys.iter().all(|(_, d, _)| *d == first_desc) {
        // One row comparison, which an index on the same keys can answer directly.
        let cols: Vec<&str> = keys.iter().map(|(c, _, _)| *c).collect();
        let vals: Vec<&str> = keys.iter().map(|(_, _, v)| v.as_str()).collect();
        return format!(
            "({}) {} ({})",
            cols.join(", "),
            if first_desc { "<" } else { ">" },
            vals.join(", ")
        );
    }
    // Mixed directions: k1 beyond, or k1 equal and the rest beyond, and so on.
    let mut expr = String::new();
    for (i, (col, desc, val)) in keys.iter().enumerate().rev() {
        let beyond = format!("{col} {} {val}", if *desc { "<" } else { ">" });
        expr = if i == keys.len() - 1 {
            beyond
        } else {
            format!("({beyond} OR ({col} = {val} AND {expr}))")
        };
    }
    expr
}

#[allow(
    clippy::too_many_arguments,
    reason = "the pieces plan() has already built, passed once"
)]
fn aggregate(
    mut b: SqlBuilder,
    entity: Entity,
    stats: &[srql_lang::StatExpr],
    from: String,
    conds: Vec<String>,
    source: Source,
    reason: String,
    limit: u32,
) -> Result<Plan, CompileError> {
    let mut select = Vec::new();
    let mut keys = Vec::new();
    for s in stats {
        let expr = match &s.func {
            StatFunc::Count => "count(*)".to_string(),
            StatFunc::CountIf { field, op, value } => {
                let f = schema::filter_field(entity, field)
                    .filter(|f| matches!(f.kind, FieldKind::Int4 | FieldKind::Int8 | FieldKind::Float8))
                    .ok_or_else(|| {
                        plan_err(format!(
                            "`{field}` cannot be used in `stats:`: expected a numeric field such as status_code or duration_ms"
                        ))
                    })?;
                let p = scalar(&f, field, value)?;
                // A missing value counts as 0, as upstream does: a trace whose root has
                // not arrived has no status, and must still land in `!= 1` so that
                // `ok + not_ok = total` holds on the cards.
                format!(
                    "count(*) FILTER (WHERE coalesce({}, 0) {} {})",
                    f.sql,
                    op_sql(*op),
                    b.bind(p)
                )
            }
        };
        // Aliases are `[a-z0-9_]+` (checked by the parser), so quoting them is enough.
        select.push(format!("{expr} AS \"{}\"", s.alias));
        keys.push((s.alias.clone(), ColumnType::Int8));
    }
    let sql = format!(
        "{from}\nSELECT {}\nFROM {}{}",
        select.join(", "),
        relation_name(source),
        where_clause(&conds)
    );
    Ok(Plan {
        entity,
        source,
        reason,
        sql: b.finish(sql.trim_start().to_string()),
        output: Output::Aggregate { keys, limit },
        ignored_keys: Vec::new(),
    })
}

#[allow(
    clippy::too_many_arguments,
    reason = "the pieces plan() has already built, passed once"
)]
fn rollup(
    b: SqlBuilder,
    entity: Entity,
    name: &str,
    from: String,
    mut conds: Vec<String>,
    source: Source,
    reason: String,
    limit: u32,
) -> Result<Plan, CompileError> {
    if entity != Entity::Traces || name != "summary" {
        return Err(plan_err(format!(
            "unknown rollup `{name}` for {}: expected `rollup_stats:summary` with `in:otel_traces`",
            schema::entity_name(entity)
        )));
    }
    // True figures over root spans, not averages of bucket averages.
    conds.push("coalesce(parent_span_id, '') = ''".into());
    let d = schema::SPAN_DURATION_MS;
    let sql = format!(
        "{from}\nSELECT count(*) AS total, count(*) FILTER (WHERE status_code = 2) AS errors, \
         coalesce(avg({d}), 0)::float8 AS avg_duration_ms, \
         coalesce(percentile_cont(0.95) WITHIN GROUP (ORDER BY {d}), 0)::float8 AS p95_duration_ms\n\
         FROM otel_traces{}",
        where_clause(&conds)
    );
    Ok(Plan {
        entity,
        source,
        reason,
        sql: b.finish(sql.trim_start().to_string()),
        output: Output::Aggregate {
            keys: vec![
                ("total".into(), ColumnType::Int8),
                ("errors".into(), ColumnType::Int8),
                ("avg_duration_ms".into(), ColumnType::Float8),
                ("p95_duration_ms".into(), ColumnType::Float8),
            ],
            limit,
        },
        ignored_keys: Vec::new(),
    })
}
