//! Who may use how many of the service's database connections at once.
//!
//! One pool, split by semaphores whose slots add up to at most its size, so a request that
//! holds a slot never waits for a connection, and nobody holds a connection while waiting
//! for another:
//! - `summaries`: cheap reads (milliseconds): precomputed summaries, trace_id lookups and
//!   span listings an index hands over in order;
//! - `on_the_fly`: aggregations and scans over spans (seconds), few at a time, so they
//!   cannot starve the cheap reads however many arrive;
//! - `service`: the catalog refresh, `/healthz` and `/metrics`, never queued behind queries.
//!
//! A full lane answers 503 + Retry-After after a bounded wait.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use srql_plan::{Measures, Output, Plan, Predicate, Source, Test};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// Slots kept for the catalog refresh, `/healthz` and `/metrics`.
const SERVICE_SLOTS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Summaries,
    OnTheFly,
    Service,
}

impl Lane {
    pub fn label(self) -> &'static str {
        match self {
            Lane::Summaries => "summaries",
            Lane::OnTheFly => "on_the_fly",
            Lane::Service => "service",
        }
    }

    /// The lane `plan` runs in: cheap reads apart from work over spans. Decided from the
    /// plan's typed predicates and page, never from the query text.
    pub fn for_plan(plan: &Plan) -> Lane {
        match plan.source {
            Source::Summaries(_) => Lane::Summaries,
            // An index lookup of the named traces' spans, however long the range.
            _ if plan.predicates.iter().any(Predicate::is_trace_id_lookup) => Lane::Summaries,
            Source::Spans if index_ordered_listing(plan) || root_rollup_of_a_day(plan) => {
                Lane::Summaries
            }
            Source::OnTheFly | Source::Spans => Lane::OnTheFly,
        }
    }
}

/// A page of span rows in timestamp order, filtered at most by service name: the
/// `(timestamp)` and `(service_name, timestamp)` indexes of `otel_traces` give the rows in
/// order, so the page costs about its own size whatever the range. Any other filter may
/// skip most rows of that order, so it may cost a scan and is not counted cheap.
fn index_ordered_listing(plan: &Plan) -> bool {
    let Output::Rows { page, .. } = &plan.output else {
        return false;
    };
    let by_time = page
        .keys
        .first()
        .is_some_and(|(k, _)| k.name == "timestamp");
    let service = plan
        .predicates
        .iter()
        .filter(|p| is_service_equality(p))
        .count();
    by_time && service <= 1 && service == plan.predicates.len()
}

/// `rollup_stats:summary` over spans (the traces tab's cards) for at most a day, filtered
/// at most by service name: the root-span index of migration 0008 holds every column it
/// reads, so it costs the range's root spans (about one span in seven), not its spans.
/// Longer ranges stay in `on_the_fly`: a week of root spans is still a long read.
fn root_rollup_of_a_day(plan: &Plan) -> bool {
    let Output::Aggregate {
        measures: Measures::RootSummary,
        ..
    } = &plan.output
    else {
        return false;
    };
    let Some(start) = plan.range.start else {
        return false;
    };
    let end = plan.range.end.unwrap_or_else(chrono::Utc::now);
    let service = plan.predicates.iter().filter(|p| is_service_equality(p));
    end - start <= chrono::Duration::days(1)
        && service.count() == plan.predicates.len()
        && plan.predicates.len() <= 1
}

fn is_service_equality(p: &Predicate) -> bool {
    p.field.name == "service_name" && !p.negated && matches!(p.test, Test::Eq(_))
}

pub struct Lanes {
    summaries: Arc<Semaphore>,
    on_the_fly: Arc<Semaphore>,
    service: Arc<Semaphore>,
}

impl Lanes {
    /// Splits `pool`: `on_the_fly` slots (at most half of what is left after the service
    /// slots) for work over spans, the rest for summary reads.
    pub fn new(pool: &Pool, on_the_fly: usize) -> Self {
        let size = pool.status().max_size;
        let queries = size.saturating_sub(SERVICE_SLOTS).max(2);
        let heavy = on_the_fly.clamp(1, queries / 2);
        let cheap = queries - heavy;
        let service = size.saturating_sub(queries).max(1);
        tracing::debug!(
            summaries = cheap,
            on_the_fly = heavy,
            service,
            "connection slots per lane"
        );
        Self {
            summaries: Arc::new(Semaphore::new(cheap)),
            on_the_fly: Arc::new(Semaphore::new(heavy)),
            service: Arc::new(Semaphore::new(service)),
        }
    }

    /// A slot in `lane`, waiting at most `wait` for one.
    pub async fn slot(&self, lane: Lane, wait: Duration) -> Result<OwnedSemaphorePermit, ApiError> {
        let semaphore = match lane {
            Lane::Summaries => &self.summaries,
            Lane::OnTheFly => &self.on_the_fly,
            Lane::Service => &self.service,
        };
        match tokio::time::timeout(wait, semaphore.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphores are never closed; treat it like a full lane anyway.
            _ => Err(ApiError::Busy(lane.label())),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use srql_plan::{Catalog, PageRequest};

    use super::Lane;

    fn lane(query: &str) -> Lane {
        let plan = srql_plan::compile(
            query,
            &Catalog::without_summaries(),
            &PageRequest::default(),
            &srql_lang::Limits::default(),
            Utc::now(),
        )
        .expect("plan");
        Lane::for_plan(&plan)
    }

    #[test]
    fn trace_id_lookups_are_cheap_and_work_over_spans_is_not() {
        assert_eq!(
            lane("in:otel_trace_summaries trace_id:abc time:last_7d"),
            Lane::Summaries
        );
        assert_eq!(lane("in:otel_trace_summaries time:last_7d"), Lane::OnTheFly);
        assert_eq!(lane("in:traces time:last_1h kind:2"), Lane::OnTheFly);
        assert_eq!(lane("in:traces trace_id:(a,b)"), Lane::Summaries);
        assert_eq!(
            lane("in:otel_trace_summaries trace_id:%ab% time:last_7d"),
            Lane::OnTheFly
        );
        assert_eq!(
            lane("in:otel_trace_summaries !trace_id:abc time:last_7d"),
            Lane::OnTheFly
        );
    }

    /// The soak's rollup card waited behind aggregations in `on_the_fly` (503s); the
    /// root-span index answers a day of it from root spans alone.
    #[test]
    fn a_day_of_root_rollup_is_cheap() {
        for cheap in [
            "in:otel_traces time:last_24h rollup_stats:summary",
            "in:otel_traces time:last_1h service_name:svc-3 rollup_stats:summary",
        ] {
            assert_eq!(lane(cheap), Lane::Summaries, "{cheap}");
        }
    }

    /// The soak's spans listing waited behind aggregations in `on_the_fly` (503s) though
    /// an index answers it in milliseconds.
    #[test]
    fn span_listings_in_index_order_are_cheap() {
        for cheap in [
            "in:otel_traces time:last_1h service_name:svc-3 sort:timestamp:desc limit:100",
            "in:traces time:last_7d",
            "in:traces service.name:a sort:timestamp:asc",
        ] {
            assert_eq!(lane(cheap), Lane::Summaries, "{cheap}");
        }
        for costly in [
            // Rare matches may be far apart in timestamp order: a scan.
            "in:traces time:last_7d status_message:%timeout%",
            "in:traces service_name:a name:b",
            "in:traces service_name:(a,b)",
            "in:traces !service_name:a",
            "in:traces sort:duration_ms:desc",
            "in:traces time:last_24h stats:\"count() as n by service_name\"",
            "in:otel_traces time:last_7d rollup_stats:summary",
            "in:otel_traces rollup_stats:summary",
            "in:otel_traces time:last_24h name:a rollup_stats:summary",
        ] {
            assert_eq!(lane(costly), Lane::OnTheFly, "{costly}");
        }
    }
}
