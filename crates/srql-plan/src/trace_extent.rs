//! Bounds a lookup by trace_id to the days its traces' spans lie in, and the span
//! conditions on the summaries of a range, and the widened on-the-fly aggregation's
//! reads by trace_id, to the days of the range's window ([`crate::trace_reach`]).
//!
//! `srql_trace_extent` (migration 0017) answers from the incremental summaries'
//! bookkeeping, exactly or not at all (then -infinity..infinity).
//!
//! Best, the executor asks for the bounds first ([`extent_query`]) and binds them into
//! the lookup ([`Plan::with_extent`]): PostgreSQL then prunes the other day partitions
//! while planning, so a sealed (columnar) day outside the extent is neither planned nor
//! read. Planning a columnar day reads its stripe metadata, tens of milliseconds per
//! day at L, which run-time pruning does not spare. A lookup rendered without asking
//! carries the bounds as initplan parameters instead (pruned when the query starts);
//! span conditions rendered without asking read every day.
//!
//! The executor reads the bounds and runs the query in one snapshot (a read-only
//! `REPEATABLE READ` transaction), so the bounds hold for every span the query sees:
//! a span committed in between would otherwise lie outside them, or make a trace
//! reach further than a window that counted no long trace.

use crate::plan::{ExtentBounds, Plan, Predicate, Source, Test};
use crate::sql::{Param, SqlBuilder, SqlQuery};
use crate::trace_reach;

/// The statement that reads `plan`'s extent bounds, when it reads spans by trace and
/// they are not known yet: the extent of the traces a lookup names, or, for conditions
/// on the spans of the summaries of a range, that range's window
/// ([`trace_reach::window_query`]). Its one row: `lo`, `hi` (NULL for an open side).
pub fn extent_query(plan: &Plan) -> Option<SqlQuery> {
    if !plan.trace_extents || plan.extent.is_some() {
        return None;
    }
    let reads_spans = !matches!(plan.source, Source::Summaries(_)) || !plan.spans.is_empty();
    if !reads_spans {
        return None;
    }
    let Some(ids) = plan.predicates.iter().find_map(lookup_ids) else {
        // Summaries searched by what is inside their traces: the range's window.
        return trace_reach::window_query(plan);
    };
    let mut b = SqlBuilder::default();
    let ids = b.bind(ids);
    Some(b.finish(format!(
        "SELECT NULLIF(lo, '-infinity'), NULLIF(hi, 'infinity') FROM srql_trace_extent({ids})"
    )))
}

/// Conditions on span rows' `timestamp`, empty when the plan has no lookup by trace_id
/// or the catalog cannot bound one.
pub fn span_conditions(b: &mut SqlBuilder, plan: &Plan) -> Vec<String> {
    if !plan.trace_extents {
        return Vec::new();
    }
    let Some(ids) = plan.predicates.iter().find_map(lookup_ids) else {
        return Vec::new();
    };
    if let Some(extent) = plan.extent {
        return bound_conditions(b, extent);
    }
    let ids = b.bind(ids);
    vec![
        format!("timestamp >= (SELECT lo FROM srql_trace_extent({ids}))"),
        format!("timestamp <= (SELECT hi FROM srql_trace_extent({ids}))"),
    ]
}

/// The trace ids a positive `trace_id:` test names, as one array bind.
fn lookup_ids(p: &Predicate) -> Option<Param> {
    if !p.is_trace_id_lookup() {
        return None;
    }
    match &p.test {
        Test::Eq(Param::Text(id)) => Some(Param::TextArray(vec![id.clone()])),
        Test::In(ids @ Param::TextArray(_)) => Some(ids.clone()),
        _ => None,
    }
}

/// Bounds on the `timestamp` of the spans that a summary plan's span conditions look up,
/// or that the widened on-the-fly aggregation reads by trace_id (its long traces, its
/// page's services), once [`extent_query`] has been answered: every span of every trace
/// the plan can show lies within them (a lookup's traces' extents, or the range's
/// window). Empty otherwise, and then the lookups read every day, which is exact too.
pub fn lookup_bounds(b: &mut SqlBuilder, plan: &Plan) -> Vec<String> {
    match plan.extent {
        Some(extent)
            if matches!(plan.source, Source::Summaries(_)) || trace_reach::applies(plan) =>
        {
            bound_conditions(b, extent)
        }
        _ => Vec::new(),
    }
}

fn bound_conditions(b: &mut SqlBuilder, extent: ExtentBounds) -> Vec<String> {
    let mut conds = Vec::new();
    if let Some(lo) = extent.lo {
        conds.push(format!("timestamp >= {}", b.bind(Param::Timestamptz(lo))));
    }
    if let Some(hi) = extent.hi {
        conds.push(format!("timestamp <= {}", b.bind(Param::Timestamptz(hi))));
    }
    conds
}
