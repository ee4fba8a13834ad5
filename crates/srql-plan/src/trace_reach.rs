//! The on-the-fly path's bulk shape where the catalog knows every trace's extent: one
//! aggregation of the spans near the range, as cheap as a plain `GROUP BY trace_id` over
//! them, plus exact lookups of the few traces that reach further.
//!
//! A trace belongs to a range iff its latest span does, and its row covers all its spans.
//! If a trace's spans lie within [`REACH`] of each other, they all lie in
//! `[start - REACH, end + REACH]` whenever any of them decides membership: a trace whose
//! latest span is in the range has every span after `start - REACH`; one whose latest
//! span is after `end` but has spans in the range has that latest span before
//! `end + REACH`, so the aggregate of the widened range sees it and the range rejects it.
//! Aggregating the widened range therefore gives exact rows for every such trace, and
//! rows the range rejects for the others it meets.
//!
//! The traces whose spans lie further apart ("long") are known exactly from the
//! incremental bookkeeping (the invariant of `srql_summary_extent`, migration 0004, the
//! same one `srql_trace_extent` leans on): every span of a trace lies inside its stored
//! extent or inside a log entry not yet drained, read in the same snapshot as the spans.
//! A trace is long when its extent, or its extent widened by its undrained log entries,
//! is longer than `REACH`; those are taken out of the widened aggregation and aggregated
//! over all their spans by `trace_id` (bounded by their extents, so a sealed day outside
//! them is pruned). Usually there are none, or few.
//!
//! Conditions on spans (`span.…`) are tests on each trace's group: a positive one holds
//! when some span of the group passes it, a negated one when none does. Each span's
//! result is computed before the grouping, as a boolean column (`flagged_spans`):
//! evaluated inside the aggregates, the test would make the sort below them carry every
//! span's `attributes` JSON, twice the bytes a plain aggregation sorts (and spills at
//! L). A positive condition also names the only traces the aggregation can keep, those
//! with a span that passes it. When it includes an attribute equality, whose spans the
//! attribute GIN finds, those spans are looked up first, and when they are few
//! ([`FEW_MATCHES`]) only their traces are aggregated, read by `trace_id`, and the rest
//! of the range is not read (`near_spans`): a rare attribute value costs a few thousand
//! index lookups instead of the range. Which branch runs is decided when the query
//! starts, from the count of candidates, so a common value pays only for finding the
//! first few thousand. Other tests (LIKE, comparisons, `*`) have no index to find them
//! by; looking for them would read the range until enough pass, up to twice.
//!
//! Only when [`crate::Catalog::trace_extents`] holds (incremental capture on one node);
//! in materialized-view mode nothing bounds a trace, and the path aggregates every trace
//! with a span in the range.

use chrono::Duration;

use crate::on_the_fly;
use crate::plan::{Plan, Source};
use crate::schema::relation;
use crate::span_search::SpanFlags;
use crate::sql::{Param, SqlBuilder, SqlQuery};
use crate::summary_sql::{self, ServiceSet};

/// How far apart a trace's spans may lie for the widened aggregation to hold the whole
/// trace. Longer traces are looked up one by one; a wider reach reads more spans around
/// every range (5 min is 0.3% of a day, 8% of an hour).
pub const REACH_SECS: i64 = 300;

/// The `WITH` alias of the traces whose spans lie further apart than [`REACH_SECS`].
const LONG: &str = "srql_long_traces";

/// Whether `plan`'s on-the-fly relation is the widened aggregation: the catalog bounds
/// traces and the range has a start (a query without one reads every span anyway), and
/// neither the ordered walk nor a lookup by trace_id reads less.
pub fn applies(plan: &Plan) -> bool {
    plan.source == Source::OnTheFly
        && plan.trace_extents
        && plan.range.start.is_some()
        && !plan.predicates.iter().any(|p| p.is_trace_id_lookup())
        && !on_the_fly::walks_latest_spans(plan)
}

/// The traces whose spans lie further apart than [`REACH_SECS`] and that may touch
/// `plan`'s range, one row each: `trace_id`, `first_ts`, `last_ts` bounding all their
/// spans. Both bounds of the range test the stored extent widened by the undrained log
/// entries, which holds every span of the trace; one that misses the range cannot
/// have its latest span in it. The extent side is answered by the partial index of
/// migration 0031, whose predicate is this `longer` test verbatim.
fn long_traces(b: &mut SqlBuilder, plan: &Plan) -> String {
    let longer = format!("> interval '{REACH_SECS} seconds'");
    let start = plan.range.start.map(|t| b.bind(Param::Timestamptz(t)));
    let end = plan.range.end.map(|t| b.bind(Param::Timestamptz(t)));
    let touching = |first: &str, last: &str| {
        let mut conds = Vec::new();
        if let Some(start) = &start {
            conds.push(format!("{last} >= {start}"));
        }
        if let Some(end) = &end {
            conds.push(format!("{first} <= {end}"));
        }
        conds
            .iter()
            .map(|c| format!("\n      AND {c}"))
            .collect::<String>()
    };
    let log_first = "least(min(l.first_ts), min(e.first_ts))";
    let log_last = "greatest(max(l.last_ts), max(e.last_ts))";
    // A trace may be long by its extent and by its log entries: one row each, so that a
    // lookup of its spans reads them once.
    format!(
        "SELECT trace_id, min(first_ts) AS first_ts, max(last_ts) AS last_ts FROM (\n    \
         SELECT trace_id, first_ts, last_ts FROM srql_summary_extent\n    \
         WHERE last_ts - first_ts {longer}{}\n    \
         UNION ALL\n    \
         SELECT l.trace_id, {log_first}, {log_last}\n    \
         FROM srql_summary_log l LEFT JOIN srql_summary_extent e ON e.trace_id = l.trace_id\n    \
         WHERE l.first_ts IS NOT NULL\n    \
         GROUP BY l.trace_id\n    \
         HAVING {log_last} - {log_first} {longer}{}\n  \
         ) long\n  \
         GROUP BY trace_id",
        touching("first_ts", "last_ts"),
        touching(log_first, log_last),
    )
}

/// Whether the span lookups of `plan` (conditions on spans of summarized traces) can be
/// bounded by the traces' reach: the catalog bounds every trace and the range has a
/// start. Then the spans of every trace the range can show lie in
/// `[start - REACH, end + REACH]` or in the extent of a long trace touching the range,
/// so the lookups read only those days: on a busy range a few of the kept days, and
/// on sealed (columnar) days outside it, which have no attribute index, nothing.
fn bounds_span_lookups(plan: &Plan) -> bool {
    matches!(plan.source, Source::Summaries(_))
        && plan.entity == srql_lang::Entity::TraceSummaries
        && plan.trace_extents
        && !plan.spans.is_empty()
        && plan.range.start.is_some()
}

/// For a plan whose span lookups [`bounds_span_lookups`], or whose on-the-fly relation
/// is the widened aggregation ([`applies`]), the statement that reads the window every
/// span of every trace the range can show lies in: one row `lo`, `hi` (NULL for an open
/// side), the range widened by [`REACH_SECS`] and by the extents of the long traces
/// touching it, and how many those are. Read first, in the same snapshot as the query
/// (`store::exec::run`), and bound as values (`Plan::with_extent`), so PostgreSQL prunes
/// the other days while planning and estimates the attribute index with the real
/// bounds; and on the fly, where no long trace touches the range, their branch is left
/// out ([`with_list`]). At S, planning the branch and the page's service lookups over
/// every day cost 2-3 ms of a 9 ms query.
pub fn window_query(plan: &Plan) -> Option<SqlQuery> {
    if !bounds_span_lookups(plan) && !applies(plan) {
        return None;
    }
    let reach = Duration::seconds(REACH_SECS);
    let mut b = SqlBuilder::default();
    let long = long_traces(&mut b, plan);
    let lo = plan
        .range
        .start
        .map(|t| {
            format!(
                "least({}, min(first_ts))",
                b.bind(Param::Timestamptz(t - reach))
            )
        })
        .unwrap_or_else(|| "NULL::timestamptz".into());
    let hi = plan
        .range
        .end
        .map(|t| {
            format!(
                "greatest({}, max(last_ts))",
                b.bind(Param::Timestamptz(t + reach))
            )
        })
        .unwrap_or_else(|| "NULL::timestamptz".into());
    Some(b.finish(format!(
        "SELECT {lo}, {hi}, count(*) FROM (\n  {long}\n) {LONG}"
    )))
}

/// The `WITH` list (without `WITH`) defining the on-the-fly relation for an
/// [`applies`] plan. `flags`: the query's span conditions (`span_search::span_flags`);
/// each aggregate below groups all the spans of its traces, so they apply there, and
/// the spans are read once. `window` binds the conditions on `timestamp` of the window
/// read first (`trace_extent::lookup_bounds`, none before it is); called only where
/// they are used, since a bound value no statement names has no type.
pub fn with_list(
    b: &mut SqlBuilder,
    plan: &Plan,
    flags: &SpanFlags,
    service_set: ServiceSet,
    window: impl FnOnce(&mut SqlBuilder) -> Vec<String>,
) -> String {
    let reach = Duration::seconds(REACH_SECS);
    let long = long_traces(b, plan);
    let mut near = Vec::new();
    if let Some(start) = plan.range.start {
        near.push(format!(
            "timestamp >= {}",
            b.bind(Param::Timestamptz(start - reach))
        ));
    }
    if let Some(end) = plan.range.end {
        near.push(format!(
            "timestamp <= {}",
            b.bind(Param::Timestamptz(end + reach))
        ));
    }
    let near = near.join(" AND ");
    let having = if flags.having.is_empty() {
        String::new()
    } else {
        format!("\n  HAVING {}", flags.having.join("\n    AND "))
    };
    let candidates = looks_for_candidates(plan, flags);
    let candidates = candidates
        .map(|test| {
            let spans = flags.spans;
            let count = format!("(SELECT count(*) FROM {CANDIDATES})");
            // The range's spans are counted up to what makes the candidates few.
            let range = format!(
                "(SELECT count(*) FROM (SELECT 1 FROM {spans} WHERE {near} LIMIT {}) r)",
                FEW_MATCHES * FEW_PART
            );
            format!(
                "{CANDIDATES} AS MATERIALIZED (\n  \
                 SELECT trace_id FROM {spans} WHERE {near} AND {test}\n  LIMIT {}\n),\n\
                 {FEW} AS MATERIALIZED (\n  \
                 SELECT {count} <= {FEW_MATCHES} AND {count} * {FEW_PART} <= {range} AS few\n),\n",
                FEW_MATCHES + 1
            )
        })
        .unwrap_or_default();
    let near = summary_sql::aggregate_over(
        &near_spans(
            &near,
            flags,
            looks_for_candidates(plan, flags).is_some(),
            service_set,
        ),
        service_set,
    ) + &having;
    let on_the_fly = relation::ON_THE_FLY;
    if plan.extent.and_then(|e| e.long_traces) == Some(0) {
        // Read in this query's snapshot: no trace reaches further.
        return format!("{candidates}{on_the_fly} AS (\n  {near}\n)");
    }
    // An aggregate per long trace (a subquery PostgreSQL keeps apart): each reads its
    // trace by trace_id in the days of its extent only, and, once the window is read,
    // in the window's days only when the query is planned.
    let mut of_long_trace = vec![
        "trace_id = long.trace_id".to_string(),
        "timestamp >= long.first_ts".to_string(),
        "timestamp <= long.last_ts".to_string(),
    ];
    of_long_trace.extend(window(b));
    let of_long_trace = summary_sql::aggregate_over(
        &flagged_spans(&of_long_trace.join(" AND "), flags, service_set),
        service_set,
    ) + &having;
    format!(
        "{LONG} AS MATERIALIZED (\n  {long}\n),\n\
         {candidates}\
         {on_the_fly} AS (\n  \
         SELECT * FROM (\n  {near}\n  ) near\n  \
         WHERE near.trace_id NOT IN (SELECT trace_id FROM {LONG})\n  \
         UNION ALL\n  \
         SELECT t.* FROM {LONG} long\n  \
         CROSS JOIN LATERAL ({of_long_trace}) t\n)"
    )
}

/// The `WITH` alias of the spans that pass a query's positive span conditions (at most
/// [`FEW_MATCHES`] + 1 of them).
const CANDIDATES: &str = "srql_span_candidates";

/// The `WITH` alias of the one-row answer to "are the candidates few?".
const FEW: &str = "srql_span_candidates_few";

/// Up to how many matching spans the widened aggregation reads only the traces that
/// hold one, by `trace_id`, instead of every span of the range. At L a rare attribute
/// value matches ~1,800 spans in 24 h, a common one (~15%) ~220,000; finding the first
/// 4,097 of those costs about 15 ms, against ~2 s for the range.
pub const FEW_MATCHES: i64 = 4096;

/// The candidates must also be at most this part of the range's spans: their traces
/// hold several spans each, and on a small range (S: 14k spans in 24 h, 2k of them
/// with the common value) reading them by trace_id cost more than the range.
const FEW_PART: i64 = 16;

/// The test of the candidate spans to look for first ([`SpanFlags::candidates`]),
/// unless the statistics say the widened range holds fewer spans than could make them
/// few ([`FEW_MATCHES`] × [`FEW_PART`]): there, finding and counting them costs more
/// than they can save (at S, 14k spans in 24 h: ~5 ms and two branches to plan, on a
/// 10 ms aggregation). Without statistics, or without an end to the range, they are
/// looked for: the count decides.
fn looks_for_candidates<'f>(plan: &Plan, flags: &'f SpanFlags) -> Option<&'f String> {
    let small = match (plan.span_rate, plan.range.start, plan.range.end) {
        (Some(rate), Some(start), Some(end)) => {
            let secs = (end - start).num_seconds() + 2 * REACH_SECS;
            rate * (secs as f64) < (FEW_MATCHES * FEW_PART) as f64
        }
        _ => false,
    };
    flags.candidates.as_ref().filter(|_| !small)
}

/// The `FROM` item of the widened aggregation's spans. With a positive condition it is
/// two branches under one-time filters on whether the candidate spans are few, so that
/// PostgreSQL runs one: the candidates' traces when they are few (each found by its
/// `trace_id` index, or by a hashed filter over the range if PostgreSQL's estimates say
/// that is cheaper), else the whole range. Both group exactly the spans of the range
/// that belong to the traces the conditions can keep, since every such trace holds a
/// candidate, and a trace's rows are either all in a branch or all out of it.
fn near_spans(near: &str, flags: &SpanFlags, candidates: bool, service_set: ServiceSet) -> String {
    if !candidates {
        return flagged_spans(near, flags, service_set);
    }
    let few = format!("(SELECT few FROM {FEW})");
    let spans = flags.spans;
    let columns = flag_columns(flags);
    let read = summary_sql::SPAN_COLUMNS;
    format!(
        "(SELECT {read}{columns} FROM {spans}\n    \
         WHERE {near} AND trace_id IN (SELECT trace_id FROM {CANDIDATES})\n      \
         AND {few}\n    \
         UNION ALL\n    \
         SELECT {read}{columns} FROM {spans}\n    \
         WHERE {near} AND NOT {few}{}) {FLAGGED}",
        fence(service_set)
    )
}

/// The `FROM` item of the spans matching `filter`, each with its span flags when the
/// query has span conditions. Only the columns the aggregates read go up (`SELECT *`
/// handed whole rows up, ~5% slower at L).
fn flagged_spans(filter: &str, flags: &SpanFlags, service_set: ServiceSet) -> String {
    let spans = flags.spans;
    if flags.is_empty() {
        return format!("{spans}\n  WHERE {filter}");
    }
    format!(
        "(SELECT {}{} FROM {spans} WHERE {filter}{}) {FLAGGED}",
        summary_sql::SPAN_COLUMNS,
        flag_columns(flags),
        fence(service_set)
    )
}

/// What keeps the flags below the aggregation where it sorts the spans by `trace_id`,
/// which it does when it aggregates `service_set`: `OFFSET 0` keeps PostgreSQL from
/// pulling the tests up into the aggregates, so the sort carries a boolean per condition
/// instead of each span's `attributes` (at L the sort spilled 2x the bytes of a plain
/// aggregation's with the JSON, and as many without). A hashed aggregation reads each
/// span once either way, and without the fence PostgreSQL may run it in parallel
/// workers (negated conditions, LIKE, comparisons at L: ~15% faster).
fn fence(service_set: ServiceSet) -> &'static str {
    match service_set {
        ServiceSet::Aggregated => " OFFSET 0",
        ServiceSet::Deferred => "",
    }
}

/// The alias of the spans with their flags.
const FLAGGED: &str = "flagged";

fn flag_columns(flags: &SpanFlags) -> String {
    flags.columns.iter().map(|c| format!(", {c}")).collect()
}
