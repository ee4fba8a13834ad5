//! Plan -> SQL text and binds: the only code that writes query SQL.
//!
//! Identifiers come from [`crate::schema`]'s allow-lists and relation names; every user
//! value reaches SQL as a bind through [`SqlBuilder::bind`]. Binds are made in a fixed
//! order (the on-the-fly `WITH`, time bounds, predicates, then the rest), which fixes the
//! `$n` numbering the snapshots show.

use srql_lang::Entity;

use crate::direction::Direction;
use crate::group_by;
use crate::on_the_fly;
use crate::plan::{Count, Measures, Output, Page, Plan, Predicate, Source, Test};
use crate::schema::{self, relation, Column, FieldKind};
use crate::span_search;
use crate::sql::{op_sql, Param, SqlBuilder, SqlQuery};
use crate::summary_sql::{self, ServiceSet};
use crate::time_range::TimeRange;
use crate::trace_extent;
use crate::trace_reach;

pub fn render(plan: &Plan) -> SqlQuery {
    let mut b = SqlBuilder::default();
    let with = with_clause(&mut b, plan);
    let mut conds = Vec::new();
    time_conditions(&mut b, &plan.range, &mut conds);
    let reach = trace_reach::applies(plan);
    for p in &plan.predicates {
        // The widened aggregation tests a filter on the services on the spans.
        if reach && p.on_spans().is_some() {
            continue;
        }
        conds.push(predicate_sql(&mut b, p));
    }
    if plan.source == Source::Spans {
        conds.extend(trace_extent::span_conditions(&mut b, plan));
    }
    let from = relation_name(plan.source);
    // The widened aggregation tests the spans where it groups them (`with_clause`).
    let spans = if reach { &[][..] } else { &plan.spans[..] };
    let bounds = if spans.is_empty() {
        Vec::new()
    } else {
        trace_extent::lookup_bounds(&mut b, plan)
    };
    let walk = if walks_first(plan, spans, &bounds) {
        // The positive conditions become one test, bound once, that both the walk's
        // probes and its read of the window's spans apply; the negated ones stay lookups.
        let anchor =
            span_search::walk_anchor(&mut b, spans, predicate_sql).expect("walks_first checked it");
        let negated: Vec<_> = spans.iter().filter(|c| c.negated).cloned().collect();
        Some(Walk {
            probe: span_search::probe(from, &bounds, &anchor),
            negated: span_search::render(
                &mut b,
                plan.entity,
                &negated,
                from,
                &bounds,
                predicate_sql,
            ),
            anchor,
            bounds: bounds.clone(),
        })
    } else {
        conds.extend(span_search::render(
            &mut b,
            plan.entity,
            spans,
            from,
            &bounds,
            predicate_sql,
        ));
        None
    };
    let sql = match &plan.output {
        Output::Rows { columns, page } => {
            rows(&mut b, plan, columns, page, &with, from, conds, walk)
        }
        Output::Aggregate {
            measures: Measures::Stats(stats),
            groups,
            ..
        } => {
            let mut select = group_by::select_keys(groups);
            select.extend(stats.iter().map(|s| {
                let expr = match &s.count {
                    Count::All => "count(*)".to_string(),
                    // A missing value counts as 0, as upstream does: a trace whose root
                    // has not arrived has no status, and must still land in `!= 1` so
                    // that `ok + not_ok = total` holds on the cards.
                    Count::Where { field, op, value } => format!(
                        "count(*) FILTER (WHERE coalesce({}, 0) {} {})",
                        field.sql,
                        op_sql(*op),
                        b.bind(value.clone())
                    ),
                };
                // Aliases are `[a-z0-9_]+` (checked by the parser), so quoting them is
                // enough.
                format!("{expr} AS \"{}\"", s.alias)
            }));
            let tail = if groups.is_empty() {
                String::new()
            } else {
                group_by::tail(&mut b, groups)
            };
            format!(
                "{with}\nSELECT {}\nFROM {from}{}{tail}",
                select.join(", "),
                where_clause(&conds)
            )
        }
        Output::Aggregate {
            measures: Measures::RootSummary,
            ..
        } => {
            // True figures over root spans, not averages of bucket averages.
            conds.push("coalesce(parent_span_id, '') = ''".into());
            let d = schema::SPAN_DURATION_MS;
            format!(
                "{with}\nSELECT count(*) AS total, count(*) FILTER (WHERE status_code = 2) AS errors, \
                 coalesce(avg({d}), 0)::float8 AS avg_duration_ms, \
                 coalesce(percentile_cont(0.95) WITHIN GROUP (ORDER BY {d}), 0)::float8 AS p95_duration_ms\n\
                 FROM {}{}",
                relation::SPANS,
                where_clause(&conds)
            )
        }
    };
    b.finish(sql.trim_start().to_string())
}

/// A page of summaries whose positive span conditions no index finds the spans of, and
/// whose window is known ([`walks_first`]): its lookups, apart from the other conditions.
struct Walk {
    /// The test one span must pass (`span_search::walk_anchor`).
    anchor: String,
    /// The window's conditions on span rows (`trace_extent::lookup_bounds`).
    bounds: Vec<String>,
    /// Whether a summary's trace has a span passing `anchor` (`span_search::probe`).
    probe: String,
    /// Each negated condition's lookup (`span_search::render`).
    negated: Vec<String>,
}

/// How many summaries a page probes before it reads the window's spans instead
/// ([`walk_first`]): about as many as reading those spans costs, so that a page costs at
/// most about twice the cheaper of the two reads, whatever share of the traces matches.
/// A probe costs what reading ~[`PROBE_SPANS`] spans does (at L, 9 µs against 0.19 µs a
/// span), so the walk is the window's estimated spans over that, within
/// [`WALK_MIN`]..=[`WALK_MAX`]; [`WALK_MIN`] without statistics.
fn walk_length(plan: &Plan) -> i64 {
    let window = plan
        .extent
        .and_then(|e| Some((e.hi? - e.lo?).num_seconds()));
    match (plan.span_rate, window) {
        (Some(rate), Some(secs)) => {
            ((rate * secs as f64 / PROBE_SPANS) as i64).clamp(WALK_MIN, WALK_MAX)
        }
        _ => WALK_MIN,
    }
}

/// Spans read for the cost of one summary probed ([`walk_length`]).
const PROBE_SPANS: f64 = 50.0;
/// The shortest walk: a page of 20 from conditions one trace in 25 meets.
pub const WALK_MIN: i64 = 500;
/// The longest walk (a week at L holds ~10M spans: 200k probes would be 2 s).
pub const WALK_MAX: i64 = 50_000;

/// Whether a page of summaries walks its first rows ([`walk_length`]), probing each trace's
/// spans, before it reads the spans that pass the conditions: on a page of summaries with
/// span conditions whose positive ones no index finds, where the window bounds both
/// reads (incremental mode). PostgreSQL cannot estimate such a test, and chose, at L,
/// either read for a page the other answers in milliseconds: 0.6 s reading the range's
/// spans for a LIKE a third of the traces meet, 1.3 s probing all 148k summaries for one
/// none meets.
fn walks_first<C>(plan: &Plan, spans: &[span_search::SpanCondition<C>], bounds: &[String]) -> bool {
    matches!(plan.source, Source::Summaries(_))
        && plan.entity == Entity::TraceSummaries
        && matches!(plan.output, Output::Rows { .. })
        && !bounds.is_empty()
        && span_search::has_walk_anchor(spans)
}

#[allow(clippy::too_many_arguments)]
fn rows(
    b: &mut SqlBuilder,
    plan: &Plan,
    columns: &[Column],
    page: &Page,
    with: &str,
    from: &str,
    mut conds: Vec<String>,
    walk: Option<Walk>,
) -> String {
    if let Some(values) = &page.after {
        conds.push(keyset_condition(b, page, values));
    }
    let deferred = plan.source == Source::OnTheFly && service_set(plan) == ServiceSet::Deferred;
    let bounds = if deferred {
        trace_extent::lookup_bounds(b, plan)
    } else {
        Vec::new()
    };
    let mut select: Vec<String> = columns
        .iter()
        .map(|c| match c.name {
            "service_set" if deferred => {
                format!(
                    "{} AS service_set",
                    summary_sql::service_set_of(PAGE, &bounds)
                )
            }
            _ => column_sql(plan.entity, c),
        })
        .collect();
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
    let group = if on_the_fly::walks_latest_spans(plan) {
        on_the_fly::collapse_copies()
    } else {
        String::new()
    };
    if let Some(walk) = walk {
        return walk_first(b, plan, page, &select, &order, &fetch, from, &conds, walk);
    }
    if deferred {
        // The page is chosen first, then each of its rows gets its services.
        return format!(
            "{with}\nSELECT {}\nFROM (\n  SELECT * FROM {from}{}\n  ORDER BY {order}\n  LIMIT {fetch}\n) {PAGE}\nORDER BY {order}",
            select.join(", "),
            where_clause(&conds),
        );
    }
    format!(
        "{with}\nSELECT {}\nFROM {from}{}{group}\nORDER BY {order}\nLIMIT {fetch}",
        select.join(", "),
        where_clause(&conds),
    )
}

/// The page of [`walks_first`]: the matches among the first [`walk_length`] summaries in
/// page order, each probed by a lookup PostgreSQL cannot turn into a join
/// (`span_search::probe`), stopping at a full page; and, only when they do not fill
/// it and more summaries follow, the matches beyond the last summary walked, found from
/// the spans that pass the anchor test in the window, one summary lookup by `trace_id`
/// each. Both read the same snapshot, and every match lies in exactly one of them.
#[allow(clippy::too_many_arguments)]
fn walk_first(
    b: &mut SqlBuilder,
    plan: &Plan,
    page: &Page,
    select: &[String],
    order: &str,
    fetch: &str,
    from: &str,
    conds: &[String],
    walk: Walk,
) -> String {
    let length = walk_length(plan);
    let first = b.bind(Param::Int8(length));
    let last = b.bind(Param::Int8(length - 1));
    let base = where_clause(conds).replace('\n', "\n    ");
    let edge_keys: Vec<String> = page
        .keys
        .iter()
        .enumerate()
        .map(|(i, (k, _))| format!("{} AS srql_edge_{i}", k.sql))
        .collect();
    let edge_values: Vec<String> = (0..page.keys.len())
        .map(|i| format!("(SELECT srql_edge_{i} FROM srql_edge)"))
        .collect();
    let mut walked = vec![walk.probe];
    walked.extend(walk.negated.iter().cloned());
    let mut beyond: Vec<String> = conds.to_vec();
    beyond.push(keyset_beyond(page, &edge_values));
    beyond.extend(walk.negated.iter().cloned());
    beyond.push(format!("(SELECT count(*) FROM srql_walked) < {fetch}"));
    let spans = relation::SPANS;
    let mut matched = walk.bounds;
    matched.push(walk.anchor);
    // The walked rows come sorted out of their subquery, so the probes stop at a full
    // page.
    format!(
        "WITH srql_walked AS MATERIALIZED (\n  \
         SELECT * FROM (\n    SELECT * FROM {from}{base}\n    ORDER BY {order}\n    LIMIT {first}\n  ) {from}{}\n  \
         ORDER BY {order}\n  LIMIT {fetch}\n),\n\
         srql_edge AS MATERIALIZED (\n  \
         SELECT {} FROM {from}{base}\n  ORDER BY {order}\n  OFFSET {last} LIMIT 1\n),\n\
         srql_matched AS MATERIALIZED (\n  \
         SELECT DISTINCT trace_id AS srql_trace FROM {spans} WHERE {}\n)\n\
         SELECT {}\nFROM (\n  SELECT * FROM srql_walked\n  UNION ALL\n  \
         SELECT {from}.* FROM srql_matched\n  CROSS JOIN LATERAL (\n    \
         SELECT * FROM {from} WHERE {from}.trace_id = srql_matched.srql_trace\n  ) {from}{}\n) {from}\n\
         ORDER BY {order}\nLIMIT {fetch}",
        where_clause(&walked).replace('\n', "\n  "),
        edge_keys.join(", "),
        matched.join(" AND "),
        select.join(", "),
        where_clause(&beyond).replace('\n', "\n  "),
    )
}

/// Whether `plan`'s on-the-fly relation computes `service_set` for every trace it
/// aggregates, or defers it to the rows shown ([`summary_sql::AGGREGATES_DEFERRING_SERVICE_SET`]):
/// deferred when the relation is a bulk aggregation (of a range, not of one trace or a
/// walk of pages) and nothing but the shown rows reads the column: no filter on the
/// trace's services (unless the widened aggregation tests it on the spans), no group or
/// count by them. Sort keys never name it. Not on Citus, which refuses the correlated
/// lookup of [`summary_sql::service_set_of`].
fn service_set(plan: &Plan) -> ServiceSet {
    let reads_services = |kind: FieldKind| kind == FieldKind::ServiceSet;
    let bulk = plan.source == Source::OnTheFly
        && !plan.distributed
        && !on_the_fly::walks_latest_spans(plan)
        && !plan.predicates.iter().any(|p| p.is_trace_id_lookup());
    let filtered =
        !trace_reach::applies(plan) && plan.predicates.iter().any(|p| reads_services(p.field.kind));
    let aggregated = match &plan.output {
        Output::Rows { .. } => false,
        Output::Aggregate {
            measures, groups, ..
        } => {
            groups.iter().any(|g| reads_services(g.kind))
                || matches!(measures, Measures::Stats(stats) if stats.iter().any(|s| {
                    matches!(&s.count, Count::Where { field, .. } if reads_services(field.kind))
                }))
        }
    };
    if bulk && !filtered && !aggregated {
        ServiceSet::Deferred
    } else {
        ServiceSet::Aggregated
    }
}

/// The alias of a page of on-the-fly rows chosen before their services are computed
/// ([`service_set`]).
const PAGE: &str = "srql_page";

/// `WITH` clause for the on-the-fly path, empty otherwise.
fn with_clause(b: &mut SqlBuilder, plan: &Plan) -> String {
    if plan.source != Source::OnTheFly {
        return String::new();
    }
    if on_the_fly::walks_latest_spans(plan) {
        return format!(
            "WITH {} AS (\n  {}\n)",
            relation::ON_THE_FLY,
            on_the_fly::latest_span_walk(plan.trace_extents)
        );
    }
    // Only traces with a span in the range can have their latest span in it, and a
    // trace's row is aggregated over all its spans, wherever they fall.
    let lookup = plan.predicates.iter().find(|p| p.is_trace_id_lookup());
    let service_set = service_set(plan);
    if trace_reach::applies(plan) {
        let services: Vec<_> = plan
            .predicates
            .iter()
            .filter_map(Predicate::on_spans)
            .collect();
        let flags = span_search::span_flags(b, &plan.spans, &services, predicate_sql);
        return format!(
            "WITH {}",
            trace_reach::with_list(b, plan, &flags, service_set, |b| {
                trace_extent::lookup_bounds(b, plan)
            })
        );
    }
    let span_filter = if let Some(lookup) = lookup {
        let mut conds = vec![predicate_sql(b, lookup)];
        conds.extend(trace_extent::span_conditions(b, plan));
        Some(conds.join(" AND "))
    } else {
        let mut conds = Vec::new();
        time_conditions(b, &plan.range, &mut conds);
        (!conds.is_empty()).then(|| {
            format!(
                "trace_id IN (SELECT trace_id FROM {} WHERE {})",
                relation::SPANS,
                conds.join(" AND ")
            )
        })
    };
    format!(
        "WITH {} AS (\n  {}\n)",
        relation::ON_THE_FLY,
        summary_sql::aggregate_spans(relation::SPANS, span_filter.as_deref(), service_set)
    )
}

fn relation_name(source: Source) -> &'static str {
    match source {
        Source::Summaries(_) => relation::SUMMARIES,
        Source::OnTheFly => relation::ON_THE_FLY,
        Source::Spans => relation::SPANS,
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

fn predicate_sql(b: &mut SqlBuilder, p: &Predicate) -> String {
    let col = p.field.sql;
    let positive = match (&p.test, p.field.kind) {
        (Test::Eq(Param::Text(s)), FieldKind::ServiceSet) => {
            format!("{col} @> {}", b.bind(Param::TextArray(vec![s.clone()])))
        }
        (Test::In(v), FieldKind::ServiceSet) => format!("{col} && {}", b.bind(v.clone())),
        (Test::Like(v), FieldKind::ServiceSet) => format!(
            "EXISTS (SELECT 1 FROM unnest({col}) AS s(name) WHERE s.name ILIKE {})",
            b.bind(Param::Text(v.clone()))
        ),
        (Test::Eq(v), _) => format!("{col} = {}", b.bind(v.clone())),
        (Test::Like(v), _) => format!("{col} ILIKE {}", b.bind(Param::Text(v.clone()))),
        (Test::In(v), _) => format!("{col} = ANY({})", b.bind(v.clone())),
        (Test::Compare(op, v), _) => format!("{col} {} {}", op_sql(*op), b.bind(v.clone())),
    };
    if p.negated {
        // NULL counts as "not equal": `!root_service_name:x` keeps traces without a root.
        format!("({positive}) IS NOT TRUE")
    } else {
        positive
    }
}

/// Rows strictly after the cursor row in the order being read.
fn keyset_condition(b: &mut SqlBuilder, page: &Page, values: &[Param]) -> String {
    let values: Vec<String> = values.iter().map(|v| b.bind(v.clone())).collect();
    keyset_beyond(page, &values)
}

/// The rows strictly beyond the row whose page keys are `values` (SQL expressions), in
/// `page`'s order.
fn keyset_beyond(page: &Page, values: &[String]) -> String {
    let flip = page.direction == Direction::Prev;
    let keys: Vec<(&str, bool, String)> = page
        .keys
        .iter()
        .zip(values)
        .map(|((k, desc), v)| (k.sql, *desc != flip, v.clone()))
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

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::{compile, Catalog, PageRequest};

    fn service_set_of(text: &str, catalog: &Catalog) -> ServiceSet {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        let plan = compile(
            text,
            catalog,
            &PageRequest::default(),
            &srql_lang::Limits::default(),
            now,
        )
        .unwrap();
        assert_eq!(plan.source, Source::OnTheFly, "{text}");
        service_set(&plan)
    }

    #[test]
    fn services_are_deferred_only_where_nothing_but_the_shown_rows_reads_them() {
        let one_node = Catalog {
            trace_extents: true,
            ..Catalog::without_summaries()
        };
        let range = "in:otel_trace_summaries time:last_24h";
        for (query, expected) in [
            (format!("{range} root_service_name:a"), ServiceSet::Deferred),
            (
                format!("{range} sort:duration_ms:desc"),
                ServiceSet::Deferred,
            ),
            (
                format!("{range} span.attributes.http.status_code:200"),
                ServiceSet::Deferred,
            ),
            (
                format!(r#"{range} stats:"count() as n by root_service_name""#),
                ServiceSet::Deferred,
            ),
            // The widened aggregation tests filters on the services on the spans.
            (format!("{range} service_name:a"), ServiceSet::Deferred),
            (format!("{range} !service_name:%a%"), ServiceSet::Deferred),
            // One trace, or the walk that aggregates only the traces it shows.
            (format!("{range} trace_id:ab"), ServiceSet::Aggregated),
            (range.to_string(), ServiceSet::Aggregated),
        ] {
            assert_eq!(service_set_of(&query, &one_node), expected, "{query}");
        }
        let citus = Catalog {
            distributed: true,
            ..Catalog::without_summaries()
        };
        assert_eq!(
            service_set_of(&format!("{range} root_service_name:a"), &citus),
            ServiceSet::Aggregated
        );
        // Without extents the bulk aggregation filters its rows on their services.
        let view = Catalog::without_summaries();
        assert_eq!(
            service_set_of(&format!("{range} root_service_name:a"), &view),
            ServiceSet::Deferred
        );
        assert_eq!(
            service_set_of(&format!("{range} service_name:a"), &view),
            ServiceSet::Aggregated
        );
    }
}
