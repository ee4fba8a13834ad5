//! Typed query + catalog -> plan: which relation answers and why, the typed predicates,
//! the time range, sort keys, page and output. No SQL text: [`crate::render`] writes it.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use srql_lang::{CompareOp, Entity, Filter, FilterValue, Query, StatFunc, Stats};

use crate::catalog::{Catalog, SummaryKind, SummaryState};
use crate::cursor;
use crate::direction::Direction;
use crate::error::CompileError;
use crate::group_by;
use crate::page_request::PageRequest;
use crate::schema::{self, Column, ColumnType, Field, FieldKind, SortField};
use crate::span_search::{self, SpanCondition, SpanTest, Target};
use crate::sql::Param;
use crate::time_range::{self, TimeRange};

/// Lets tests, benchmarks and (where allowed) clients pin the summary path or the
/// on-the-fly path: see [`Plan::pin_source`].
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
    pub reason: Reason,
    /// Inclusive bounds on the row timestamp, resolved against "now" and retention.
    pub range: TimeRange,
    /// The query's filters on the entity's own fields, ANDed, in query order.
    pub predicates: Vec<Predicate>,
    /// The query's conditions on spans (`span.…`, `attributes.…`, `resource.…`), ANDed
    /// with the predicates, in query order; column tests are positive predicates over
    /// span rows.
    pub spans: Vec<SpanCondition<Predicate>>,
    pub output: Output,
    /// Lookups by trace_id are bounded by their traces' extents ([`Catalog::trace_extents`]).
    pub trace_extents: bool,
    /// The spans may be a Citus distributed table ([`Catalog::distributed`]).
    pub distributed: bool,
    /// Spans stored per second of retention, by the statistics
    /// ([`Catalog::stored_spans`]): how many spans a range holds, roughly.
    pub span_rate: Option<f64>,
    /// The extent bounds read before running, once the executor has read them
    /// (`trace_extent::extent_query`); until then a bounded lookup reads them in its own SQL.
    pub extent: Option<ExtentBounds>,
    /// Upstream keys the query used that change nothing here, for the API to report.
    pub ignored_keys: Vec<String>,
}

/// Where the spans of a lookup's traces, or of every trace a range can show, lie, as read
/// from the database; `None` on a side leaves it open (a trace the bookkeeping does not
/// know, or capture off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtentBounds {
    pub lo: Option<DateTime<Utc>>,
    pub hi: Option<DateTime<Utc>>,
    /// For a range's window (`trace_reach::window_query`): how many traces whose spans
    /// lie further apart than the reach touch the range. `None` for a lookup's extent.
    pub long_traces: Option<i64>,
}

impl Plan {
    /// The plan with its lookup's extent bounds, as read by `trace_extent::extent_query`.
    pub fn with_extent(self, extent: ExtentBounds) -> Self {
        Self {
            extent: Some(extent),
            ..self
        }
    }

    /// The plan with its source pinned as preferred. A pin is applied after the automatic
    /// choice so there is one place that decides whether the summaries can answer; span
    /// reads have one source and ignore it.
    pub fn pin_source(mut self, preference: SourcePreference) -> Result<Plan, CompileError> {
        match (preference, self.source) {
            (SourcePreference::Auto, _) | (_, Source::Spans) => {}
            (SourcePreference::OnTheFly, _) => {
                self.source = Source::OnTheFly;
                self.reason = Reason::OnTheFlyRequested;
            }
            (SourcePreference::Summaries, Source::Summaries(_)) => {
                self.reason = Reason::SummariesRequested;
            }
            (SourcePreference::Summaries, Source::OnTheFly) => {
                return Err(CompileError::SummariesUnusable {
                    why: self.reason.to_string(),
                })
            }
        }
        Ok(self)
    }

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
    /// A single object with one key per alias; with `groups`, one object per group (at
    /// most [`crate::MAX_GROUPS`]) holding the group's key values then the aliases.
    Aggregate {
        keys: Vec<(String, ColumnType)>,
        limit: u32,
        measures: Measures,
        /// `stats: ... by`: the group key fields, in order; empty for one row.
        groups: Vec<Field>,
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
    /// The cursor row's key values, typed like `keys`: rows strictly beyond it are read.
    pub after: Option<Vec<Param>>,
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

/// Parse and plan in one go.
pub fn compile(
    text: &str,
    catalog: &Catalog,
    request: &PageRequest<'_>,
    limits: &srql_lang::Limits,
    now: DateTime<Utc>,
) -> Result<Plan, CompileError> {
    let query = srql_lang::parse(text, limits)?;
    plan(&query, catalog, request, now)
}

/// The source is chosen automatically; [`Plan::pin_source`] overrides it.
pub fn plan(
    query: &Query,
    catalog: &Catalog,
    request: &PageRequest<'_>,
    now: DateTime<Utc>,
) -> Result<Plan, CompileError> {
    let entity = query.entity.ok_or(CompileError::MissingEntity)?;
    let mut range =
        time_range::resolve(query.time.as_ref(), now).map_err(|message| CompileError::Range {
            offset: query.time_offset,
            message,
        })?;
    if let (None, Some(retention)) = (range.start, catalog.retention) {
        range.start = Some(now - retention);
    }
    let (span_filters, filters): (Vec<&Filter>, Vec<&Filter>) = query
        .filters
        .iter()
        .partition(|f| span_search::is_span_field(entity, &f.field));
    let predicates = filters
        .into_iter()
        .map(|f| predicate(entity, f))
        .collect::<Result<Vec<_>, _>>()?;
    let spans = span_filters
        .into_iter()
        .map(|f| span_condition(entity, f))
        .collect::<Result<Vec<_>, _>>()?;
    if query.stats.is_some() && query.rollup_stats.is_some() {
        return Err(CompileError::StatsAndRollup);
    }
    let (source, reason) = choose_source(entity, &range, &predicates, catalog);
    let one_trace = entity == Entity::Traces
        && query.stats.is_none()
        && query.rollup_stats.is_none()
        && predicates
            .iter()
            .any(|p| p.is_trace_id_lookup() && matches!(p.test, Test::Eq(_)));
    let limit = request.resolve_limit(query, one_trace)?;
    let output = if let Some(name) = &query.rollup_stats {
        rollup(entity, name, limit)?
    } else if let Some(stats) = &query.stats {
        aggregate(entity, stats, limit)?
    } else {
        let mut page = page(entity, query, request, limit)?;
        if let Some(c) = request.cursor {
            let (direction, values) = cursor::decode(c, &page.signature(), &page.key_types())?;
            if request.direction.is_some_and(|asked| asked != direction) {
                return Err(CompileError::DirectionContradictsCursor { cursor: direction });
            }
            page.direction = direction;
            page.after = Some(values);
        }
        Output::Rows {
            columns: schema::columns(entity),
            page,
        }
    };
    Ok(Plan {
        entity,
        source,
        reason,
        range,
        predicates,
        spans,
        output,
        trace_extents: catalog.trace_extents,
        distributed: catalog.distributed,
        span_rate: catalog
            .stored_spans
            .zip(catalog.retention)
            .map(|(spans, retention)| spans / retention.num_seconds().max(1) as f64),
        extent: None,
        ignored_keys: query.ignored_keys.clone(),
    })
}

/// A filter checked against the entity's allow-list, its value typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Predicate {
    pub field: Field,
    /// NULL counts as "not equal": `!root_service_name:x` keeps traces without a root.
    pub negated: bool,
    pub test: Test,
}

/// What a predicate checks of its field, with the value already typed for the bind.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Eq(Param),
    /// Case-insensitive LIKE pattern.
    Like(String),
    /// Membership in a list (an array bind).
    In(Param),
    Compare(CompareOp, Param),
}

impl Predicate {
    /// A positive `trace_id:` equality or list: the query names its traces.
    pub fn is_trace_id_lookup(&self) -> bool {
        self.field.name == "trace_id"
            && !self.negated
            && matches!(self.test, Test::Eq(_) | Test::In(_))
    }

    /// A filter on a trace's services (`service_set`) as the condition on its spans it
    /// stands for: a trace touches a service iff one of its spans names it, so the
    /// positive filter holds when some span passes the test and the negated one when
    /// none does. `None` for other fields.
    pub fn on_spans(&self) -> Option<SpanCondition<Predicate>> {
        if self.field.kind != FieldKind::ServiceSet {
            return None;
        }
        let field = schema::filter_field(Entity::Traces, "service_name")?;
        Some(SpanCondition {
            negated: self.negated,
            test: SpanTest::Column(Predicate {
                field,
                negated: false,
                test: self.test.clone(),
            }),
        })
    }
}

fn predicate(entity: Entity, f: &Filter) -> Result<Predicate, CompileError> {
    let field =
        schema::filter_field(entity, &f.field).ok_or_else(|| CompileError::UnknownField {
            offset: f.offset,
            field: f.field.clone(),
            entity: schema::entity_name(entity),
            expected: [
                schema::filter_names(entity),
                span_search::field_names(entity).to_vec(),
            ]
            .concat(),
        })?;
    typed_predicate(field, f)
}

/// A condition on spans; a column test is typed like the spans' own filter on it, and
/// kept positive (the condition carries the negation).
fn span_condition(entity: Entity, f: &Filter) -> Result<SpanCondition<Predicate>, CompileError> {
    let test = match span_search::target(entity, f)? {
        Target::Column(name) => {
            let field = schema::filter_field(Entity::Traces, name)
                .expect("span search columns are in the spans' allow-list");
            let mut positive = typed_predicate(field, f)?;
            positive.negated = false;
            SpanTest::Column(positive)
        }
        Target::Attribute(map, key) => {
            SpanTest::Attribute(span_search::attribute_test(map, key, f)?)
        }
    };
    Ok(SpanCondition {
        negated: f.negated,
        test,
    })
}

fn typed_predicate(field: Field, f: &Filter) -> Result<Predicate, CompileError> {
    let textual = matches!(field.kind, FieldKind::Text | FieldKind::ServiceSet);
    let test = match &f.value {
        FilterValue::Scalar { value, like: true } => {
            if !textual {
                return Err(CompileError::PatternOnNumber {
                    offset: f.offset,
                    field: f.field.clone(),
                });
            }
            Test::Like(value.clone())
        }
        FilterValue::Scalar { value, .. } => Test::Eq(scalar(&field, &f.field, f.offset, value)?),
        FilterValue::List(items) => Test::In(list(&field, &f.field, f.offset, items)?),
        FilterValue::Compare { op, value } => {
            if textual {
                return Err(CompileError::CompareOnText {
                    offset: f.offset,
                    field: f.field.clone(),
                });
            }
            Test::Compare(*op, scalar(&field, &f.field, f.offset, value)?)
        }
        FilterValue::Exists => {
            return Err(CompileError::ExistsOnField {
                offset: f.offset,
                field: f.field.clone(),
            })
        }
    };
    Ok(Predicate {
        field,
        negated: f.negated,
        test,
    })
}

fn scalar(field: &Field, written: &str, offset: usize, v: &str) -> Result<Param, CompileError> {
    Ok(match field.kind {
        FieldKind::Text | FieldKind::ServiceSet => Param::Text(v.to_string()),
        FieldKind::Int4 => Param::Int4(number(written, offset, v, "an integer")?),
        FieldKind::Int8 => Param::Int8(number(written, offset, v, "an integer")?),
        FieldKind::Float8 => Param::Float8(finite(written, offset, v)?),
    })
}

fn list(
    field: &Field,
    written: &str,
    offset: usize,
    items: &[String],
) -> Result<Param, CompileError> {
    fn each<T>(
        items: &[String],
        f: impl Fn(&str) -> Result<T, CompileError>,
    ) -> Result<Vec<T>, CompileError> {
        items.iter().map(|v| f(v)).collect()
    }
    Ok(match field.kind {
        FieldKind::Text | FieldKind::ServiceSet => Param::TextArray(items.to_vec()),
        FieldKind::Int4 => {
            Param::Int4Array(each(items, |v| number(written, offset, v, "an integer"))?)
        }
        FieldKind::Int8 => {
            Param::Int8Array(each(items, |v| number(written, offset, v, "an integer"))?)
        }
        FieldKind::Float8 => Param::Float8Array(each(items, |v| finite(written, offset, v))?),
    })
}

fn number<T: std::str::FromStr>(
    written: &str,
    offset: usize,
    v: &str,
    what: &'static str,
) -> Result<T, CompileError> {
    v.parse().map_err(|_| wrong_type(written, offset, v, what))
}

fn finite(written: &str, offset: usize, v: &str) -> Result<f64, CompileError> {
    let x: f64 = number(written, offset, v, "a number")?;
    if x.is_finite() {
        Ok(x)
    } else {
        Err(wrong_type(written, offset, v, "a finite number"))
    }
}

fn wrong_type(written: &str, offset: usize, v: &str, what: &'static str) -> CompileError {
    CompileError::WrongType {
        offset,
        field: written.to_string(),
        found: v.to_string(),
        expected: what,
    }
}

fn choose_source(
    entity: Entity,
    range: &TimeRange,
    predicates: &[Predicate],
    catalog: &Catalog,
) -> (Source, Reason) {
    if entity == Entity::Traces {
        return (Source::Spans, Reason::SpanRows);
    }
    match summaries_usable(range, predicates, catalog) {
        Ok(kind) => (Source::Summaries(kind), Reason::SummariesCover),
        Err(why) => (Source::OnTheFly, Reason::Unusable(why)),
    }
}

/// Why this source answers: shown by `/translate`.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    SpanRows,
    OnTheFlyRequested,
    SummariesRequested,
    SummariesCover,
    /// Automatic choice of the on-the-fly path, because the summaries cannot answer.
    Unusable(Unusable),
}

/// Why the summaries cannot answer a query exactly.
#[derive(Debug, Clone, PartialEq)]
pub enum Unusable {
    Missing,
    Unpopulated,
    TraceIdLookup,
    BeforeWindow { covers_from: DateTime<Utc> },
    NoStartBound,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::SpanRows => f.write_str("span rows are read from otel_traces"),
            Reason::OnTheFlyRequested => f.write_str("on-the-fly aggregation requested"),
            Reason::SummariesRequested => f.write_str("summaries requested"),
            Reason::SummariesCover => f.write_str("the summaries cover the requested range"),
            Reason::Unusable(why) => why.fmt(f),
        }
    }
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unusable::Missing => f.write_str("the summary relation does not exist"),
            Unusable::Unpopulated => f.write_str("the summary relation is not populated yet"),
            Unusable::TraceIdLookup => f.write_str(
                "lookup by trace_id: aggregated from its spans by index, so traces newer than the summaries are found",
            ),
            Unusable::BeforeWindow { covers_from } => write!(
                f,
                "the range starts before the summary window (which begins {})",
                covers_from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            Unusable::NoStartBound => {
                f.write_str("the query has no start bound and span retention is unknown")
            }
        }
    }
}

/// The summary relation to read, or why it cannot answer this query exactly.
fn summaries_usable(
    range: &TimeRange,
    predicates: &[Predicate],
    catalog: &Catalog,
) -> Result<SummaryKind, Unusable> {
    let (kind, covers_from) = match &catalog.summaries {
        SummaryState::Missing => return Err(Unusable::Missing),
        SummaryState::Unpopulated { .. } => return Err(Unusable::Unpopulated),
        SummaryState::Ready {
            kind, covers_from, ..
        } => (*kind, *covers_from),
    };
    if predicates.iter().any(Predicate::is_trace_id_lookup) {
        return Err(Unusable::TraceIdLookup);
    }
    match range.start {
        Some(start) if start < covers_from => Err(Unusable::BeforeWindow { covers_from }),
        None => Err(Unusable::NoStartBound),
        _ => Ok(kind),
    }
}

/// Sort keys and page size; the direction is the request's until a cursor says otherwise.
fn page(
    entity: Entity,
    query: &Query,
    request: &PageRequest<'_>,
    limit: u32,
) -> Result<Page, CompileError> {
    let mut keys: Vec<(SortField, bool)> = Vec::new();
    for k in &query.sort {
        let field =
            schema::sort_field(entity, &k.field).ok_or_else(|| CompileError::UnknownSort {
                offset: k.offset,
                field: k.field.clone(),
                entity: schema::entity_name(entity),
                expected: schema::sort_names(entity),
            })?;
        if !keys.iter().any(|(f, _)| f.name == field.name) {
            keys.push((field, k.descending));
        }
    }
    if keys.is_empty() {
        keys.push((schema::default_sort(entity), true));
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
        direction: request.direction.unwrap_or_default(),
        from_cursor: request.cursor.is_some(),
        after: None,
    })
}

/// What an aggregate query computes.
#[derive(Debug, Clone, PartialEq)]
pub enum Measures {
    /// `stats:`, one value per alias, in order.
    Stats(Vec<Stat>),
    /// `rollup_stats:summary`: totals over root spans.
    RootSummary,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stat {
    /// `[a-z0-9_]+` (checked by the parser).
    pub alias: String,
    pub count: Count,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Count {
    All,
    /// Rows whose numeric field compares true to the value; a missing value counts as 0.
    Where {
        field: Field,
        op: CompareOp,
        value: Param,
    },
}

fn aggregate(entity: Entity, stats: &Stats, limit: u32) -> Result<Output, CompileError> {
    let aliases: Vec<&str> = stats.exprs.iter().map(|s| s.alias.as_str()).collect();
    let groups = group_by::resolve(entity, &stats.by, &aliases)?;
    let mut measures = Vec::new();
    let mut keys: Vec<(String, ColumnType)> = groups
        .iter()
        .map(|f| (f.name.to_string(), group_by::column_type(f)))
        .collect();
    for s in &stats.exprs {
        let count = match &s.func {
            StatFunc::Count => Count::All,
            StatFunc::CountIf { field, op, value } => {
                let f = schema::filter_field(entity, field)
                    .filter(|f| {
                        matches!(
                            f.kind,
                            FieldKind::Int4 | FieldKind::Int8 | FieldKind::Float8
                        )
                    })
                    .ok_or_else(|| CompileError::StatsField {
                        field: field.clone(),
                    })?;
                // `stats:` expressions record no offset of their own.
                let value = scalar(&f, field, 0, value).map_err(|e| match e {
                    CompileError::WrongType {
                        field,
                        found,
                        expected,
                        ..
                    } => CompileError::StatsValue {
                        field,
                        found,
                        expected,
                    },
                    other => other,
                })?;
                Count::Where {
                    field: f,
                    op: *op,
                    value,
                }
            }
        };
        measures.push(Stat {
            alias: s.alias.clone(),
            count,
        });
        keys.push((s.alias.clone(), ColumnType::Int8));
    }
    Ok(Output::Aggregate {
        keys,
        limit,
        measures: Measures::Stats(measures),
        groups,
    })
}

fn rollup(entity: Entity, name: &str, limit: u32) -> Result<Output, CompileError> {
    if entity != Entity::Traces || name != "summary" {
        return Err(CompileError::UnknownRollup {
            name: name.to_string(),
            entity: schema::entity_name(entity),
        });
    }
    Ok(Output::Aggregate {
        keys: vec![
            ("total".into(), ColumnType::Int8),
            ("errors".into(), ColumnType::Int8),
            ("avg_duration_ms".into(), ColumnType::Float8),
            ("p95_duration_ms".into(), ColumnType::Float8),
        ],
        limit,
        measures: Measures::RootSummary,
        groups: Vec::new(),
    })
}
