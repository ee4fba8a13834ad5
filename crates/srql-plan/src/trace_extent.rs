//! Bounds a lookup by trace_id to the days its traces' spans lie in.
//!
//! `srql_trace_extent` (migration 0017) answers from the incremental summaries'
//! bookkeeping, exactly or not at all (then -infinity..infinity). Its two bounds are
//! initplan parameters, so PostgreSQL prunes the other day partitions when the query
//! starts: a sealed (columnar) day it skips costs nothing, one it visits reads its
//! chunk-group metadata even when the trace is not there.

use crate::plan::{Plan, Predicate, Test};
use crate::sql::{Param, SqlBuilder};

/// Conditions on span rows' `timestamp`, empty when the plan has no lookup by trace_id
/// or the catalog cannot bound one.
pub fn span_conditions(b: &mut SqlBuilder, plan: &Plan) -> Vec<String> {
    if !plan.trace_extents {
        return Vec::new();
    }
    let Some(ids) = plan.predicates.iter().find_map(lookup_ids) else {
        return Vec::new();
    };
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
