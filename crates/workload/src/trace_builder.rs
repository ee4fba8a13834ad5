//! Turns a drawn [`TraceShape`] into the spans of one trace: identifiers, names, text.

use std::sync::Arc;

use chrono::DateTime;
use span_row::SpanRow;

use crate::attributes::{self, SpanContext};
use crate::catalog::{self, Operation, INTERNAL_NAMES, ROUTES};
use crate::json::{push_hex_u64, ObjectWriter};
use crate::prng::{mix64, stream_key, Rng, GOLDEN};
use crate::resources;
use crate::span::{kind, status, Span, Trace};
use crate::trace_shape::{SpanShape, TraceShape, MAX_SPANS};

/// Purposes of the streams derived from `(seed, index)`; see [`stream_key`].
pub(crate) const PURPOSE_SHAPE: u64 = 1;
pub(crate) const PURPOSE_IDS: u64 = 2;
pub(crate) const PURPOSE_START_TIME: u64 = 3;

/// Share of internal spans whose instrumentation leaves the kind UNSPECIFIED.
const UNSPECIFIED_KIND_SHARE: f64 = 0.1;
/// Share of cache reads that record a miss event.
const CACHE_MISS_SHARE: f64 = 0.2;

/// The identifiers of one trace.
///
/// The low half of the trace id is a bijection of the index (for a given seed), so trace
/// ids are unique within a seed by construction, not just with high probability; span ids
/// are a bijection of the span's position within the trace, so they are unique within it.
#[derive(Clone, Copy)]
struct TraceIds {
    high: u64,
    low: u64,
}

impl TraceIds {
    fn new(seed: u64, index: u64) -> Self {
        let low = mix64(index.wrapping_add(stream_key(seed, 0, PURPOSE_IDS)));
        let high = mix64(low ^ stream_key(seed, 1, PURPOSE_IDS));
        Self { high, low }
    }

    fn trace_id(self) -> String {
        let mut s = String::with_capacity(32);
        push_hex_u64(&mut s, self.high);
        push_hex_u64(&mut s, self.low);
        s
    }

    fn span_id(self, position: usize) -> u64 {
        mix64(
            self.low
                .wrapping_add((position as u64 + 1).wrapping_mul(GOLDEN)),
        )
    }
}

fn hex16(value: u64) -> String {
    let mut s = String::with_capacity(16);
    push_hex_u64(&mut s, value);
    s
}

/// Builds trace `index` of `seed`, its root starting at `start_ns` (Unix nanoseconds).
pub(crate) fn build(seed: u64, index: u64, start_ns: i64) -> Trace {
    let mut rng = Rng::from_key(stream_key(seed, index, PURPOSE_SHAPE));
    let shape = TraceShape::draw(&mut rng);
    let ids = TraceIds::new(seed, index);
    let mut span_ids = [0u64; MAX_SPANS];
    for (position, id) in span_ids.iter_mut().enumerate().take(shape.spans().len()) {
        *id = ids.span_id(position);
    }
    let trace = TraceText {
        shape: &shape,
        trace_id: ids.trace_id(),
        span_ids,
        // A consumer links to the producing trace; the trace before this one stands in.
        producer: TraceIds::new(seed, index.wrapping_sub(1)),
        start_ns,
    };

    let skip = usize::from(shape.root_dropped);
    let count = shape.spans().len();
    let mut spans = Vec::with_capacity(count - skip);
    for position in skip..count {
        spans.push(trace.span(position, &mut rng));
    }
    Trace { spans }
}

/// What the spans of one trace share.
struct TraceText<'a> {
    shape: &'a TraceShape,
    trace_id: String,
    span_ids: [u64; MAX_SPANS],
    producer: TraceIds,
    start_ns: i64,
}

impl TraceText<'_> {
    fn span(&self, position: usize, rng: &mut Rng) -> Span {
        let shape = self.shape;
        let s: &SpanShape = &shape.spans()[position];
        let service_of = |s: &SpanShape| usize::from(shape.services[usize::from(s.service_slot)]);
        let service = service_of(s);
        let parent = s.parent.map(usize::from);
        let parent_service = parent.map_or(service, |p| service_of(&shape.spans()[p]));
        let replica = resources::replica(
            service,
            usize::from(shape.instances[usize::from(s.service_slot)]),
        );

        let start = self.start_ns.saturating_add(s.offset_ns);
        let end = start.saturating_add(s.duration_ns);

        let (name, span_kind) = name_and_kind(s.operation, shape.route, rng);

        let mut attributes = String::with_capacity(192);
        let ctx = SpanContext {
            service,
            parent_service,
            route: shape.route,
            status: s.status,
        };
        attributes::write(&mut attributes, s.operation, &ctx, rng);

        let (status_message, events) = if s.status == status::ERROR {
            let table = catalog::errors(s.operation);
            let (exception_type, message) = table[rng.index(table.len())];
            (
                message.to_owned(),
                exception_event(end, exception_type, message),
            )
        } else if s.operation == Operation::CacheGet && rng.chance(CACHE_MISS_SHARE) {
            (String::new(), cache_miss_event(end))
        } else {
            (String::new(), String::from("[]"))
        };
        let links = if s.operation == Operation::Consume {
            producer_link(self.producer)
        } else {
            String::from("[]")
        };

        let row = SpanRow {
            timestamp: DateTime::from_timestamp_nanos(start),
            trace_id: self.trace_id.clone(),
            span_id: hex16(self.span_ids[position]),
            parent_span_id: parent.map(|p| hex16(self.span_ids[p])).unwrap_or_default(),
            name: name.to_owned(),
            kind: span_kind,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            resource: Arc::clone(replica),
            scope: catalog::scope(s.operation),
            status_code: s.status,
            status_message,
            attributes,
            events,
            links,
        };
        Span {
            row,
            arrival_delay_ms: s.arrival_delay_ms,
        }
    }
}

fn name_and_kind(op: Operation, route: usize, rng: &mut Rng) -> (&'static str, i32) {
    match op {
        Operation::HttpServer => (ROUTES[route], kind::SERVER),
        Operation::RpcServer => ("grpc.Call", kind::SERVER),
        Operation::DbQuery => ("db.query", kind::CLIENT),
        Operation::CacheGet => ("cache.get", kind::CLIENT),
        Operation::CacheSet => ("cache.set", kind::CLIENT),
        Operation::HttpClient => ("http.client", kind::CLIENT),
        Operation::Internal => {
            let name = INTERNAL_NAMES[rng.index(INTERNAL_NAMES.len())];
            let k = if rng.chance(UNSPECIFIED_KIND_SHARE) {
                kind::UNSPECIFIED
            } else {
                kind::INTERNAL
            };
            (name, k)
        }
        Operation::Publish => ("queue.publish", kind::PRODUCER),
        Operation::Consume => ("queue.process", kind::CONSUMER),
    }
}

fn exception_event(at_ns: i64, exception_type: &str, message: &str) -> String {
    let mut out = String::with_capacity(160);
    out.push('[');
    let mut event = ObjectWriter::new(&mut out);
    event.str("name", "exception");
    event
        .object("attributes")
        .str("exception.type", exception_type)
        .str("exception.message", message)
        .finish();
    event.int("time_unix_nano", at_ns).finish();
    out.push(']');
    out
}

fn cache_miss_event(at_ns: i64) -> String {
    let mut out = String::with_capacity(64);
    out.push('[');
    ObjectWriter::new(&mut out)
        .str("name", "cache.miss")
        .int("time_unix_nano", at_ns)
        .finish();
    out.push(']');
    out
}

fn producer_link(producer: TraceIds) -> String {
    let mut out = String::with_capacity(128);
    out.push('[');
    let mut link = ObjectWriter::new(&mut out);
    let span_id = link.begin_raw_str("span_id");
    push_hex_u64(span_id, producer.span_id(0));
    let trace_id = link.end_raw_str().begin_raw_str("trace_id");
    push_hex_u64(trace_id, producer.high);
    push_hex_u64(trace_id, producer.low);
    link.end_raw_str();
    link.object("attributes")
        .str("messaging.operation", "receive")
        .finish();
    link.finish();
    out.push(']');
    out
}
