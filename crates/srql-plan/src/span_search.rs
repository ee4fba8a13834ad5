//! Search inside traces: conditions on the spans of a trace (`span.…` on trace summaries)
//! and on span attributes (`attributes.…`, `resource.…` on span rows).
//!
//! Meaning, as in a TraceQL spanset `{a && b}`: on trace summaries every positive `span.`
//! condition of a query holds on the *same* span, so they render as one
//! `EXISTS (SELECT 1 FROM otel_traces …)` correlated on `trace_id`; each negated one means
//! that no span of the trace matches it (`NOT EXISTS`). On span rows each condition tests
//! the row itself. The lookup reads `otel_traces` directly on both summary paths, so the
//! summaries and the on-the-fly aggregation select the same traces, and a span that has
//! arrived but is not summarized yet already counts.
//!
//! Attribute values are JSON. A value `V` matches the string `V`; written as a JSON number
//! it also matches that number (`503` matches 503, 503.0 and "503"); `true`/`false` also
//! match the boolean. Comparisons (`>`, `>=`, `<`, `<=`) see numbers only. A `%` pattern
//! is a case-insensitive LIKE over the value's text (numbers and booleans included).
//! A bare `*` asks that the key exists, whatever its value.
//!
//! Column conditions (`span.name:` …) reuse the planner's typed predicates; this module is
//! generic over them so that it needs nothing from the planner or renderer.

use serde_json::{Map, Number, Value};
use srql_lang::{CompareOp, Entity, Filter, FilterValue};

use crate::error::CompileError;
use crate::schema;
use crate::sql::{op_sql, Param, SqlBuilder};

/// Every condition on spans of one query, in query order.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanCondition<C> {
    /// On summaries: no span of the trace matches. On span rows: the row does not match
    /// (a missing key or value counts as "does not match").
    pub negated: bool,
    pub test: SpanTest<C>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SpanTest<C> {
    /// A column of the span, as a positive typed predicate over `otel_traces`.
    Column(C),
    Attribute(AttributeTest),
}

/// Which JSON object of the span an attribute key is looked up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeMap {
    /// `attributes`: the span's own.
    Span,
    /// `resource_attributes`: the emitting resource's (`service.name`, `k8s.*`, ...).
    Resource,
}

impl AttributeMap {
    fn column(self) -> &'static str {
        match self {
            AttributeMap::Span => "attributes",
            AttributeMap::Resource => "resource_attributes",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AttributeTest {
    pub map: AttributeMap,
    /// Case-sensitive, dots included: one flat OpenTelemetry key.
    pub key: String,
    pub value: AttributeValue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    /// Equal to any of these JSON scalars (each written value's readings).
    AnyOf(Vec<Value>),
    /// Case-insensitive LIKE over the value's text.
    Like(String),
    /// A number compared with this one, kept as JSON number text so that SQL compares it
    /// exactly as `numeric`.
    Compare(CompareOp, String),
    Exists,
}

/// What a span field of `entity` names, or `None` when `field` is not one.
pub enum Target {
    /// A column of `otel_traces`: its name in the spans' allow-list.
    Column(&'static str),
    Attribute(AttributeMap, String),
}

const SUMMARY_COLUMNS: [(&str, &str); 5] = [
    ("span.name", "name"),
    ("span.service_name", "service_name"),
    ("span.kind", "kind"),
    ("span.status_code", "status_code"),
    ("span.duration_ms", "duration_ms"),
];

/// The span field forms of `entity`, for "expected one of" hints.
pub fn field_names(entity: Entity) -> &'static [&'static str] {
    match entity {
        Entity::TraceSummaries => &[
            "span.name",
            "span.service_name",
            "span.kind",
            "span.status_code",
            "span.duration_ms",
            "span.attributes.<key>",
            "span.resource.<key>",
        ],
        Entity::Traces => &["attributes.<key>", "resource.<key>"],
    }
}

/// Whether a filter on `field` is a condition on spans for `entity`.
pub fn is_span_field(entity: Entity, field: &str) -> bool {
    match entity {
        Entity::TraceSummaries => field.starts_with("span."),
        Entity::Traces => field.starts_with("attributes.") || field.starts_with("resource."),
    }
}

/// What `f` (a span field of `entity`) names.
pub fn target(entity: Entity, f: &Filter) -> Result<Target, CompileError> {
    let prefixes: &[(&str, AttributeMap)] = match entity {
        Entity::TraceSummaries => &[
            ("span.attributes.", AttributeMap::Span),
            ("span.resource.", AttributeMap::Resource),
        ],
        Entity::Traces => &[
            ("attributes.", AttributeMap::Span),
            ("resource.", AttributeMap::Resource),
        ],
    };
    for (prefix, map) in prefixes {
        if let Some(key) = f.field.strip_prefix(prefix) {
            return Ok(Target::Attribute(*map, key.to_string()));
        }
    }
    if entity == Entity::TraceSummaries {
        if let Some((_, column)) = SUMMARY_COLUMNS.iter().find(|(n, _)| *n == f.field) {
            return Ok(Target::Column(column));
        }
    }
    Err(CompileError::UnknownField {
        offset: f.offset,
        field: f.field.clone(),
        entity: schema::entity_name(entity),
        expected: [schema::filter_names(entity), field_names(entity).to_vec()].concat(),
    })
}

/// The typed test of an attribute filter.
pub fn attribute_test(
    map: AttributeMap,
    key: String,
    f: &Filter,
) -> Result<AttributeTest, CompileError> {
    let value = match &f.value {
        FilterValue::Exists => AttributeValue::Exists,
        FilterValue::Scalar { value, like: true } => AttributeValue::Like(value.clone()),
        FilterValue::Scalar { value, like: false } => AttributeValue::AnyOf(readings(value)),
        FilterValue::List(items) => {
            AttributeValue::AnyOf(items.iter().flat_map(|v| readings(v)).collect())
        }
        FilterValue::Compare { op, value } => {
            let number = json_number(value).ok_or_else(|| CompileError::WrongType {
                offset: f.offset,
                field: f.field.clone(),
                found: value.clone(),
                expected: "a number",
            })?;
            AttributeValue::Compare(*op, number.to_string())
        }
    };
    Ok(AttributeTest { map, key, value })
}

/// A value written in a query, read as each JSON scalar it may stand for.
fn readings(text: &str) -> Vec<Value> {
    let mut values = vec![Value::String(text.to_string())];
    if let Some(number) = json_number(text) {
        values.push(Value::Number(number));
    }
    match text {
        "true" => values.push(Value::Bool(true)),
        "false" => values.push(Value::Bool(false)),
        _ => {}
    }
    values
}

/// `text` when it is a JSON number (so also valid `numeric` input), finite.
fn json_number(text: &str) -> Option<Number> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Number(n)) if n.as_f64().is_some_and(f64::is_finite) => Some(n),
        _ => None,
    }
}

/// The SQL conditions of `conditions` on the rows of `outer` (a relation with a
/// `trace_id` column for summaries, `otel_traces` for span rows), ANDed by the caller.
/// `bounds`: conditions on span rows that hold for every span of every trace `outer`
/// can show (`trace_extent::lookup_bounds`), added to each lookup on summaries so that
/// it reads only the days they leave. `column_sql` renders a column predicate over
/// `otel_traces`.
pub fn render<C>(
    b: &mut SqlBuilder,
    entity: Entity,
    conditions: &[SpanCondition<C>],
    outer: &str,
    bounds: &[String],
    column_sql: impl Fn(&mut SqlBuilder, &C) -> String,
) -> Vec<String> {
    let test_sql = |b: &mut SqlBuilder, test: &SpanTest<C>| test_sql(b, test, &column_sql);
    if entity == Entity::Traces {
        return conditions
            .iter()
            .map(|c| {
                let sql = test_sql(b, &c.test);
                if c.negated {
                    format!("({sql}) IS NOT TRUE")
                } else {
                    sql
                }
            })
            .collect();
    }
    // PostgreSQL turns this correlated EXISTS into a semi-join it can drive from either
    // side: from the summaries in page order, probing each trace by trace_id (cheap when
    // matching spans are common), or from the spans an index finds (migrations 0011 and
    // 0016; the GIN one answers `attribute_sql`'s containment tests),
    // then their summaries (cheap when they are rare). The choice needs the statistics
    // and the bind values, so it is left to the planner. Without `bounds` the lookup
    // reads every day: a trace's earlier spans may lie before the query's range.
    let lookup =
        |tests: Vec<String>| format!("EXISTS (SELECT 1 FROM {})", spans_of(outer, bounds, &tests));
    let mut out = Vec::new();
    let positive: Vec<String> = conditions
        .iter()
        .filter(|c| !c.negated)
        .map(|c| test_sql(b, &c.test))
        .collect();
    if !positive.is_empty() {
        out.push(lookup(positive));
    }
    for c in conditions.iter().filter(|c| c.negated) {
        let sql = test_sql(b, &c.test);
        out.push(format!("NOT {}", lookup(vec![sql])));
    }
    out
}

/// The `FROM` and `WHERE` of a lookup of the spans of `outer`'s trace (a relation with a
/// `trace_id` column) that pass `bounds` and `tests`.
fn spans_of(outer: &str, bounds: &[String], tests: &[String]) -> String {
    let spans = schema::relation::SPANS;
    let tests: Vec<&str> = bounds.iter().chain(tests).map(String::as_str).collect();
    format!(
        "{spans} WHERE {spans}.trace_id = {outer}.trace_id AND {}",
        tests.join(" AND ")
    )
}

/// Whether some span of `outer`'s trace passes `bounds` and `test`, as a probe that
/// PostgreSQL evaluates row by row where it stands and never turns into a join (a scalar
/// subquery with a `LIMIT`), so that a walk of summaries stops at the first that fill a
/// page. The same meaning as [`render`]'s positive lookup.
pub fn probe(outer: &str, bounds: &[String], test: &str) -> String {
    format!(
        "(SELECT true FROM {} LIMIT 1) IS TRUE",
        spans_of(outer, bounds, &[test.to_string()])
    )
}

/// For a page of summaries that walks its first rows before it looks the spans up
/// (`render`'s `walk_first`): the test one span must pass for its trace to meet the
/// positive conditions of `conditions`, all on the same span, when there are positive
/// conditions and no index finds their spans. PostgreSQL cannot estimate how many spans
/// such a test passes (a LIKE on an attribute was estimated at 370 spans of the 60,423
/// it passed at L), so left to itself it may read every span of the range for a common
/// value, or probe every summary of the range for a value no span has.
pub fn walk_anchor<C>(
    b: &mut SqlBuilder,
    conditions: &[SpanCondition<C>],
    column_sql: impl Fn(&mut SqlBuilder, &C) -> String,
) -> Option<String> {
    if !has_walk_anchor(conditions) {
        return None;
    }
    let positive: Vec<&SpanCondition<C>> = conditions.iter().filter(|c| !c.negated).collect();
    let tests: Vec<String> = positive
        .iter()
        .map(|c| test_sql(b, &c.test, &column_sql))
        .collect();
    Some(tests.join(" AND "))
}

/// Whether [`walk_anchor`] has a test for `conditions`: a positive one tests an attribute
/// and none is found by an index. Span columns have statistics; attribute values do not.
pub fn has_walk_anchor<C>(conditions: &[SpanCondition<C>]) -> bool {
    let positive = || conditions.iter().filter(|c| !c.negated);
    positive().any(|c| matches!(c.test, SpanTest::Attribute(_)))
        && !positive().any(|c| found_by_index(&c.test))
}

/// The conditions of a query on trace summaries, split for an aggregation whose groups
/// hold all the spans of one trace each (`trace_reach.rs`): the same meaning as
/// [`render`]'s lookups, without a second read of the spans.
#[derive(Debug)]
pub struct SpanFlags {
    /// One boolean per span and condition group, `<test> AS <alias>`: computed on each
    /// span row before the grouping, so that only a flag, not the JSON the test reads,
    /// travels through the sort into the aggregate.
    pub columns: Vec<String>,
    /// The tests of a group over those flags, ANDed by the caller (a `HAVING`).
    pub having: Vec<String>,
    /// The test one span must pass for its trace to qualify, when a positive condition
    /// is one an index finds the spans of ([`found_by_index`]): its traces are the only
    /// ones the aggregation can keep.
    pub candidates: Option<String>,
    /// The relation of spans the tests read: the table unless one tests a resource
    /// attribute ([`crate::schema::relation::SPAN_TABLE`]).
    pub spans: &'static str,
}

impl SpanFlags {
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }
}

/// [`SpanFlags`] of `conditions` and of `apart`: conditions each tested on its own, not
/// on the span that passes `conditions`' positive ones (a filter on the trace's services,
/// [`crate::Predicate::on_spans`]).
pub fn span_flags<C>(
    b: &mut SqlBuilder,
    conditions: &[SpanCondition<C>],
    apart: &[SpanCondition<C>],
    column_sql: impl Fn(&mut SqlBuilder, &C) -> String,
) -> SpanFlags {
    let positive: Vec<&SpanCondition<C>> = conditions.iter().filter(|c| !c.negated).collect();
    let reads_resource = conditions.iter().any(|c| {
        matches!(
            &c.test,
            SpanTest::Attribute(AttributeTest {
                map: AttributeMap::Resource,
                ..
            })
        )
    });
    let mut flags = SpanFlags {
        columns: Vec::new(),
        having: Vec::new(),
        candidates: None,
        spans: if reads_resource {
            schema::relation::SPANS
        } else {
            schema::relation::SPAN_TABLE
        },
    };
    // `IS TRUE`: a span whose test is NULL does not match, as in a `WHERE`.
    if !positive.is_empty() {
        let tests: Vec<String> = positive
            .iter()
            .map(|c| test_sql(b, &c.test, &column_sql))
            .collect();
        let all = tests.join(" AND ");
        flags
            .columns
            .push(format!("({all}) IS TRUE AS srql_span_match"));
        flags.having.push("bool_or(srql_span_match)".into());
        if positive.iter().any(|c| found_by_index(&c.test)) {
            flags.candidates = Some(all);
        }
    }
    for (i, c) in conditions.iter().filter(|c| c.negated).enumerate() {
        let sql = test_sql(b, &c.test, &column_sql);
        flags
            .columns
            .push(format!("({sql}) IS TRUE AS srql_span_match_not_{i}"));
        flags
            .having
            .push(format!("NOT bool_or(srql_span_match_not_{i})"));
    }
    for (i, c) in apart.iter().enumerate() {
        let sql = test_sql(b, &c.test, &column_sql);
        flags
            .columns
            .push(format!("({sql}) IS TRUE AS srql_span_apart_{i}"));
        let not = if c.negated { "NOT " } else { "" };
        flags
            .having
            .push(format!("{not}bool_or(srql_span_apart_{i})"));
    }
    flags
}

/// Whether an index finds the spans that pass `test` on a heap day: equality on a span
/// attribute, a containment test migration 0016's GIN answers. The others would be
/// looked for by reading the range until enough spans pass, which for a value on a
/// few percent of the spans reads much of the range twice.
fn found_by_index<C>(test: &SpanTest<C>) -> bool {
    matches!(
        test,
        SpanTest::Attribute(AttributeTest {
            map: AttributeMap::Span,
            value: AttributeValue::AnyOf(_),
            ..
        })
    )
}

fn test_sql<C>(
    b: &mut SqlBuilder,
    test: &SpanTest<C>,
    column_sql: &impl Fn(&mut SqlBuilder, &C) -> String,
) -> String {
    match test {
        SpanTest::Column(c) => column_sql(b, c),
        SpanTest::Attribute(a) => attribute_sql(b, a),
    }
}

/// One attribute test over the current `otel_traces` row. Equality is JSON containment,
/// which a GIN index (`jsonb_path_ops`) answers; values and keys are binds, cast from text
/// so that the driver sends them as text.
fn attribute_sql(b: &mut SqlBuilder, a: &AttributeTest) -> String {
    let col = a.map.column();
    let key = || Param::Text(a.key.clone());
    match &a.value {
        AttributeValue::AnyOf(values) => {
            let tests: Vec<String> = values
                .iter()
                .map(|v| {
                    let mut object = Map::new();
                    object.insert(a.key.clone(), v.clone());
                    let json = Value::Object(object).to_string();
                    format!("{col} @> {}::text::jsonb", b.bind(Param::Text(json)))
                })
                .collect();
            if tests.len() == 1 {
                tests.into_iter().collect()
            } else {
                format!("({})", tests.join(" OR "))
            }
        }
        AttributeValue::Like(pattern) => format!(
            "{col} ->> {}::text ILIKE {}",
            b.bind(key()),
            b.bind(Param::Text(pattern.clone()))
        ),
        AttributeValue::Compare(op, number) => {
            let k = b.bind(key());
            format!(
                "CASE WHEN jsonb_typeof({col} -> {k}::text) = 'number' \
                 THEN ({col} -> {k}::text)::numeric END {} {}::text::numeric",
                op_sql(*op),
                b.bind(Param::Text(number.clone()))
            )
        }
        AttributeValue::Exists => format!("{col} ? {}::text", b.bind(key())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_reads_as_each_scalar_it_may_stand_for() {
        assert_eq!(readings("503"), vec![Value::from("503"), Value::from(503)]);
        assert_eq!(
            readings("true"),
            vec![Value::from("true"), Value::from(true)]
        );
        assert_eq!(readings("GET"), vec![Value::from("GET")]);
        // Not JSON numbers: text only.
        assert_eq!(readings("+5"), vec![Value::from("+5")]);
        assert_eq!(readings("1e400"), vec![Value::from("1e400")]);
        assert_eq!(readings("NaN"), vec![Value::from("NaN")]);
    }
}
