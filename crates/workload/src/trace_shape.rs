//! The numeric skeleton of one trace: how many spans, who is whose parent, which service,
//! when, how long, which status. Every probability of docs/workload.md lives here; the
//! text of the spans is added afterwards by `trace_builder`.

use crate::catalog::{self, Operation, ROUTES, SERVICES};
use crate::prng::Rng;
use crate::span::status;

/// Spans per trace are `1 + floor(Exp(mean 7))`, capped at 40.
pub(crate) const MAX_SPANS: usize = 40;
const MEAN_EXTRA_SPANS: f64 = 7.0;

/// A trace touches 1..=6 services.
pub(crate) const MAX_SERVICES_PER_TRACE: usize = 6;

/// Share of traces whose root span is missing (lost, or not yet arrived).
pub(crate) const NO_ROOT_SHARE: f64 = 0.005;
/// `P(spans >= 2) = exp(-1/7)`: the root is only dropped from traces that keep a span, so
/// the drop probability among those is raised to keep the overall share at 0.5%. Written
/// as a literal so that no platform `exp` enters the output.
const SHARE_WITH_TWO_OR_MORE_SPANS: f64 = 0.866_877_899_750_181_6;

/// Share of traces with at least one ERROR span.
pub(crate) const ERROR_TRACE_SHARE: f64 = 0.05;
/// An error propagates to the parent with this probability, step by step towards the root.
const ERROR_PROPAGATION: f64 = 0.5;
/// Among spans without an error, the share with status OK (the rest stay UNSET).
const OK_SHARE: f64 = 0.7;

/// Share of spans that arrive late, and the largest delay.
pub(crate) const LATE_SHARE: f64 = 0.01;
pub(crate) const MAX_ARRIVAL_DELAY_MS: u64 = 600_000;

/// Span durations are log-normal: median 20 ms; sigma 1.4 puts p99 near 0.5 s and p99.9
/// near 1.5 s (the "long tail to seconds"); clamped so no span is absurd.
const MEDIAN_DURATION_NS: f64 = 20e6;
const DURATION_SIGMA: f64 = 1.4;
const MIN_DURATION_NS: f64 = 10e3;
const MAX_DURATION_NS: f64 = 30e9;

/// No span starts later than this after the first span of its trace ("within a few
/// seconds of the trace start").
pub(crate) const MAX_START_OFFSET_NS: i64 = 5_000_000_000;

#[derive(Debug, Clone, Copy)]
pub(crate) struct SpanShape {
    /// Index of the parent within the trace; `None` for the root.
    pub parent: Option<u8>,
    /// Index into [`TraceShape::services`].
    pub service_slot: u8,
    pub operation: Operation,
    /// Start relative to the root's start.
    pub offset_ns: i64,
    pub duration_ns: i64,
    pub status: i32,
    pub arrival_delay_ms: i64,
}

const EMPTY_SPAN: SpanShape = SpanShape {
    parent: None,
    service_slot: 0,
    operation: Operation::Internal,
    offset_ns: 0,
    duration_ns: 0,
    status: status::UNSET,
    arrival_delay_ms: 0,
};

#[derive(Debug, Clone)]
pub(crate) struct TraceShape {
    spans: [SpanShape; MAX_SPANS],
    span_count: usize,
    /// Service numbers (into [`SERVICES`]), distinct; the root's is first.
    pub services: [u8; MAX_SERVICES_PER_TRACE],
    /// Which replica of each service served this trace.
    pub instances: [u8; MAX_SERVICES_PER_TRACE],
    pub service_count: usize,
    /// Index into [`ROUTES`].
    pub route: usize,
    /// The root span (index 0) is generated, so its children keep pointing at it, but
    /// not emitted.
    pub root_dropped: bool,
}

impl TraceShape {
    /// All spans including a dropped root, parents before children.
    pub(crate) fn spans(&self) -> &[SpanShape] {
        &self.spans[..self.span_count]
    }

    /// Draws one trace. The order of draws is part of the workload's definition: changing
    /// it changes every trace of every seed.
    pub(crate) fn draw(rng: &mut Rng) -> Self {
        let mut shape = TraceShape {
            spans: [EMPTY_SPAN; MAX_SPANS],
            span_count: 0,
            services: [0; MAX_SERVICES_PER_TRACE],
            instances: [0; MAX_SERVICES_PER_TRACE],
            service_count: 0,
            route: 0,
            root_dropped: false,
        };

        // `as usize` saturates, and the cap bounds it anyway.
        let extra = rng.exponential(MEAN_EXTRA_SPANS) as usize;
        let n = 1 + extra.min(MAX_SPANS - 1);
        shape.span_count = n;
        shape.root_dropped = n >= 2 && rng.chance(NO_ROOT_SHARE / SHARE_WITH_TWO_OR_MORE_SPANS);

        shape.service_count = 1 + rng.index(MAX_SERVICES_PER_TRACE.min(n));
        shape.draw_services(rng);

        // Squaring skews routes towards the first ones, like real traffic.
        let u = rng.unit();
        shape.route = ((u * u * ROUTES.len() as f64) as usize).min(ROUTES.len() - 1);

        shape.draw_tree(rng);
        shape.draw_timing(rng);
        shape.draw_status(rng);

        for span in &mut shape.spans[..n] {
            if rng.chance(LATE_SHARE) {
                span.arrival_delay_ms = 1 + rng.below(MAX_ARRIVAL_DELAY_MS) as i64;
            }
        }
        shape
    }

    /// A partial Fisher-Yates shuffle: `service_count` distinct services.
    fn draw_services(&mut self, rng: &mut Rng) {
        let mut pool: [u8; SERVICES.len()] = [0; SERVICES.len()];
        for (i, slot) in pool.iter_mut().enumerate() {
            *slot = i as u8;
        }
        for i in 0..self.service_count {
            let j = i + rng.index(pool.len() - i);
            pool.swap(i, j);
            self.services[i] = pool[i];
            self.instances[i] = rng.index(catalog::INSTANCES_PER_SERVICE) as u8;
        }
    }

    /// Parents are uniform among earlier spans (a random recursive tree, depth about
    /// ln n). Spans 1..service_count enter the trace's other services, so every chosen
    /// service appears; later spans stay in their parent's service.
    fn draw_tree(&mut self, rng: &mut Rng) {
        self.spans[0].operation = Operation::HttpServer;
        for j in 1..self.span_count {
            let parent = rng.index(j);
            let span = if j < self.service_count {
                SpanShape {
                    parent: Some(parent as u8),
                    service_slot: j as u8,
                    operation: Operation::RpcServer,
                    ..EMPTY_SPAN
                }
            } else {
                SpanShape {
                    parent: Some(parent as u8),
                    service_slot: self.spans[parent].service_slot,
                    operation: catalog::inner_operation(rng.below(100) as u32),
                    ..EMPTY_SPAN
                }
            };
            self.spans[j] = span;
        }
    }

    /// Durations are drawn independently, then handed out longest first: parents come
    /// before children, so every child fits inside its parent and the marginal
    /// distribution stays exactly log-normal.
    fn draw_timing(&mut self, rng: &mut Rng) {
        let n = self.span_count;
        let mut durations = [0i64; MAX_SPANS];
        for d in &mut durations[..n] {
            let ns = rng
                .log_normal(MEDIAN_DURATION_NS, DURATION_SIGMA)
                .clamp(MIN_DURATION_NS, MAX_DURATION_NS);
            *d = ns as i64;
        }
        durations[..n].sort_unstable_by(|a, b| b.cmp(a));
        for (span, d) in self.spans[..n].iter_mut().zip(durations) {
            span.duration_ns = d;
        }
        for j in 1..n {
            let Some(parent) = self.spans[j].parent else {
                continue;
            };
            let parent = self.spans[usize::from(parent)];
            let slack = (parent.duration_ns - self.spans[j].duration_ns).max(0);
            let offset = parent.offset_ns + (rng.unit() * slack as f64) as i64;
            // Pulling a start earlier keeps it inside the parent: the parent's own start
            // is under the cap, and the end moves earlier too.
            self.spans[j].offset_ns = offset.min(MAX_START_OFFSET_NS);
        }
    }

    fn draw_status(&mut self, rng: &mut Rng) {
        let n = self.span_count;
        for span in &mut self.spans[..n] {
            span.status = if rng.chance(OK_SHARE) {
                status::OK
            } else {
                status::UNSET
            };
        }
        if !rng.chance(ERROR_TRACE_SHARE) {
            return;
        }
        // The failing span is never the root when there are others, so a trace whose
        // root is dropped still shows its error.
        let mut failing = if n > 1 { 1 + rng.index(n - 1) } else { 0 };
        loop {
            self.spans[failing].status = status::ERROR;
            match self.spans[failing].parent {
                Some(parent) if rng.chance(ERROR_PROPAGATION) => failing = usize::from(parent),
                _ => break,
            }
        }
    }
}
