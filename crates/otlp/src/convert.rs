//! OTLP spans to `otel_traces` rows (columns: docs/srql.md, "Spans").
//!
//! A span that cannot be stored faithfully (ids of the wrong length, times past
//! `bigint`) is rejected on its own and counted, per the OTLP partial-success rules; the
//! rest of the request is kept. Text that PostgreSQL cannot hold (NUL, in `text` or as
//! `\u0000` in `jsonb`) is replaced by U+FFFD rather than failing a whole COPY batch.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, DurationRound, SecondsFormat, Utc};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::Span;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use store::ingest::{SpanResource, SpanRow, SpanScope};

/// Rejected spans of one request: how many, and the first few reasons (one message for
/// the client's `partial_success.error_message` and one log line).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rejections {
    count: u64,
    out_of_window: u64,
    reasons: Vec<String>,
}

/// Reasons kept per request; the count says how many there were in all.
const MAX_REASONS: usize = 3;

impl Rejections {
    pub fn add(&mut self, reason: impl FnOnce() -> String) {
        self.count += 1;
        if self.reasons.len() < MAX_REASONS {
            self.reasons.push(reason());
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Of [`Rejections::count`], the spans refused for their time alone.
    pub fn out_of_window(&self) -> u64 {
        self.out_of_window
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// E.g. `2 spans rejected: span "GET /": trace_id has 15 bytes, expected 16; ...`.
    pub fn message(&self) -> String {
        if self.count == 0 {
            return String::new();
        }
        let mut m = format!(
            "{} span{} rejected: {}",
            self.count,
            if self.count == 1 { "" } else { "s" },
            self.reasons.join("; ")
        );
        if self.count > self.reasons.len() as u64 {
            m.push_str("; ...");
        }
        m
    }
}

/// The span start times accepted, in Unix nanoseconds, both ends included. Spans
/// outside would land in a day that upkeep drops or has no partition for: a client could
/// otherwise decide how many partitions exist (every span dated on another future day
/// used to become a partition at the next upkeep).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    pub earliest: i64,
    pub latest: i64,
}

impl TimeWindow {
    /// From the start of the oldest day upkeep keeps (the UTC day holding
    /// `now - retention`) to `now + max_future`.
    pub fn at(now: DateTime<Utc>, retention: Duration, max_future: Duration) -> Self {
        let to_chrono =
            |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        let oldest = now
            .checked_sub_signed(to_chrono(retention))
            .map_or(i64::MIN, |t| {
                t.duration_trunc(chrono::Duration::days(1))
                    .unwrap_or(t)
                    .timestamp_nanos_opt()
                    .unwrap_or(i64::MIN)
            });
        let latest = now
            .checked_add_signed(to_chrono(max_future))
            .and_then(|t| t.timestamp_nanos_opt())
            .unwrap_or(i64::MAX);
        Self {
            earliest: oldest,
            latest,
        }
    }

    /// Every time `bigint` nanoseconds can hold.
    pub fn unbounded() -> Self {
        Self {
            earliest: i64::MIN,
            latest: i64::MAX,
        }
    }

    fn contains(&self, nanos: i64) -> bool {
        (self.earliest..=self.latest).contains(&nanos)
    }
}

fn rfc3339(nanos: i64) -> String {
    DateTime::from_timestamp_nanos(nanos).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Maps every span of `request` whose start lies in `window`; rejected spans are counted
/// in `rejections`.
pub fn map_request(
    request: ExportTraceServiceRequest,
    window: &TimeWindow,
    rejections: &mut Rejections,
) -> Vec<SpanRow> {
    let total: usize = request
        .resource_spans
        .iter()
        .flat_map(|r| r.scope_spans.iter())
        .map(|s| s.spans.len())
        .sum();
    let mut out = Vec::with_capacity(total);
    for rs in request.resource_spans {
        let resource = Arc::new(map_resource(rs.resource.as_ref()));
        for ss in rs.scope_spans {
            let scope = Arc::new(map_scope(ss.scope.as_ref()));
            for span in ss.spans {
                // Checked before mapping, so refused spans cost no JSON rendering.
                let start = nanos(span.start_time_unix_nano);
                if let Some(start) = start.filter(|t| !window.contains(*t)) {
                    rejections.out_of_window += 1;
                    rejections.add(|| {
                        format!(
                            "span {:?}: start time {} is outside the accepted window [{}, {}]",
                            short(&span.name),
                            rfc3339(start),
                            rfc3339(window.earliest),
                            rfc3339(window.latest)
                        )
                    });
                    continue;
                }
                match map_span(span, &resource, &scope) {
                    Ok(r) => out.push(r),
                    Err(reason) => rejections.add(|| reason),
                }
            }
        }
    }
    out
}

fn map_resource(resource: Option<&Resource>) -> SpanResource {
    let attrs = resource.map_or(&[][..], |r| &r.attributes[..]);
    SpanResource {
        service_name: attr_text(attrs, "service.name"),
        service_version: attr_text(attrs, "service.version"),
        service_instance: attr_text(attrs, "service.instance.id"),
        attributes: attributes_json(attrs),
    }
}

fn map_scope(scope: Option<&InstrumentationScope>) -> SpanScope {
    scope.map_or_else(SpanScope::default, |s| SpanScope {
        name: clean_text(s.name.clone()),
        version: clean_text(s.version.clone()),
    })
}

fn map_span(
    span: Span,
    resource: &Arc<SpanResource>,
    scope: &Arc<SpanScope>,
) -> Result<SpanRow, String> {
    let reject = |what: String| format!("span {:?}: {what}", short(&span.name));
    let trace_id = id_hex(&span.trace_id, 16).map_err(|e| reject(format!("trace_id {e}")))?;
    let span_id = id_hex(&span.span_id, 8).map_err(|e| reject(format!("span_id {e}")))?;
    let parent_span_id = match span.parent_span_id.len() {
        0 => String::new(),
        // All zeros is OpenTelemetry's invalid span id: no parent.
        8 if span.parent_span_id.iter().all(|b| *b == 0) => String::new(),
        8 => hex(&span.parent_span_id),
        n => {
            return Err(reject(format!(
                "parent_span_id has {n} bytes, expected 8 or 0"
            )))
        }
    };
    let start = nanos(span.start_time_unix_nano)
        .ok_or_else(|| reject("start_time_unix_nano is past the year 2262".into()))?;
    let end = nanos(span.end_time_unix_nano)
        .ok_or_else(|| reject("end_time_unix_nano is past the year 2262".into()))?;
    let attributes = attributes_json(&span.attributes);
    let events = to_json(&Events(&span.events));
    let links = to_json(&Links(&span.links));
    let (status_code, status_message) = span
        .status
        .map_or((0, String::new()), |s| (s.code, clean_text(s.message)));
    Ok(SpanRow {
        // The partition key: the start, as exporters set it.
        timestamp: DateTime::from_timestamp_nanos(start),
        resource: resource.clone(),
        scope: scope.clone(),
        trace_id,
        span_id,
        parent_span_id,
        name: clean_text(span.name),
        kind: span.kind,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        status_code,
        status_message,
        attributes,
        events,
        links,
    })
}

/// Span names in messages: enough to find the span, never a whole megabyte.
fn short(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

fn nanos(n: u64) -> Option<i64> {
    i64::try_from(n).ok()
}

/// `bytes` as lowercase hex if it is a valid id of `len` bytes (all zeros is invalid).
fn id_hex(bytes: &[u8], len: usize) -> Result<String, String> {
    if bytes.len() != len {
        return Err(format!("has {} bytes, expected {len}", bytes.len()));
    }
    if bytes.iter().all(|b| *b == 0) {
        return Err("is all zeros (invalid)".into());
    }
    Ok(hex(bytes))
}

/// Lowercase hex, as `otel_traces` stores ids.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

fn clean_text(s: String) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s
    }
}

fn clean(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// The value of attribute `key` as text (the last one if repeated, as in the JSON
/// object, where the last duplicate wins); `None` when absent or empty-valued.
fn attr_text(attrs: &[KeyValue], key: &str) -> Option<String> {
    let value = attrs
        .iter()
        .rev()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?;
    match value.value.as_ref()? {
        Value::StringValue(s) => Some(clean_text(s.clone())),
        Value::BoolValue(b) => Some(b.to_string()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::DoubleValue(d) => Some(d.to_string()),
        _ => Some(to_json(&Any(value))),
    }
}

fn attributes_json(attrs: &[KeyValue]) -> String {
    to_json(&Attrs(attrs))
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Our Serialize impls only ever produce string keys, the one thing serde_json can
    // refuse; should that change, an empty object keeps the row storable.
    serde_json::to_string(value).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot render span data as JSON");
        "{}".into()
    })
}

/// Attributes as a JSON object, key -> value, keys in the order jsonb stores them
/// (shorter first, then bytewise): PostgreSQL sorts the keys of every object it reads,
/// which is cheap when they come sorted. The sort is stable, so duplicate keys keep their
/// order and jsonb keeps the last, as received.
struct Attrs<'a>(&'a [KeyValue]);

fn jsonb_key_order(a: &KeyValue, b: &KeyValue) -> std::cmp::Ordering {
    a.key
        .len()
        .cmp(&b.key.len())
        .then_with(|| a.key.as_bytes().cmp(b.key.as_bytes()))
}

impl Serialize for Attrs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut sorted: Vec<&KeyValue> = self.0.iter().collect();
        sorted.sort_by(|a, b| jsonb_key_order(a, b));
        let mut map = s.serialize_map(Some(sorted.len()))?;
        for kv in sorted {
            map.serialize_entry(&clean(&kv.key), &kv.value.as_ref().map(Any))?;
        }
        map.end()
    }
}

/// An OTLP AnyValue as the JSON value a person would write: strings, booleans and
/// numbers as themselves, arrays and key-value lists as arrays and objects, bytes as
/// base64 (as OTLP/JSON writes them), non-finite doubles as the strings OTLP/JSON uses,
/// and an empty value as null.
struct Any<'a>(&'a AnyValue);

impl Serialize for Any<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0.value {
            None => s.serialize_unit(),
            Some(Value::StringValue(v)) => s.serialize_str(&clean(v)),
            Some(Value::BoolValue(b)) => s.serialize_bool(*b),
            Some(Value::IntValue(i)) => s.serialize_i64(*i),
            Some(Value::DoubleValue(d)) if d.is_finite() => s.serialize_f64(*d),
            Some(Value::DoubleValue(d)) => s.serialize_str(if d.is_nan() {
                "NaN"
            } else if *d > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            }),
            Some(Value::ArrayValue(a)) => s.collect_seq(a.values.iter().map(Any)),
            Some(Value::KvlistValue(kv)) => Attrs(&kv.values).serialize(s),
            Some(Value::BytesValue(b)) => {
                s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
            }
            // An index into a profiles dictionary: meaningless without it.
            Some(Value::StringValueStrindex(_)) => s.serialize_unit(),
        }
    }
}

/// Events as a JSON array, in the shape the workload generator writes: name, time,
/// attributes.
struct Events<'a>(&'a [Event]);

impl Serialize for Events<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(EventJson))
    }
}

struct EventJson<'a>(&'a Event);

impl Serialize for EventJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("name", &clean(&e.name))?;
        map.serialize_entry("time_unix_nano", &e.time_unix_nano)?;
        map.serialize_entry("attributes", &Attrs(&e.attributes))?;
        if e.dropped_attributes_count > 0 {
            map.serialize_entry("dropped_attributes_count", &e.dropped_attributes_count)?;
        }
        map.end()
    }
}

/// Links as a JSON array: ids in lowercase hex like the span's own, then attributes;
/// trace state, flags and dropped counts only when set.
struct Links<'a>(&'a [Link]);

impl Serialize for Links<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(LinkJson))
    }
}

struct LinkJson<'a>(&'a Link);

impl Serialize for LinkJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let l = self.0;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("trace_id", &hex(&l.trace_id))?;
        map.serialize_entry("span_id", &hex(&l.span_id))?;
        if !l.trace_state.is_empty() {
            map.serialize_entry("trace_state", &clean(&l.trace_state))?;
        }
        map.serialize_entry("attributes", &Attrs(&l.attributes))?;
        if l.flags != 0 {
            map.serialize_entry("flags", &l.flags)?;
        }
        if l.dropped_attributes_count > 0 {
            map.serialize_entry("dropped_attributes_count", &l.dropped_attributes_count)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_counts_all_and_quotes_the_first_few() {
        let mut r = Rejections::default();
        assert_eq!(r.message(), "");
        for i in 0..5 {
            r.add(|| format!("reason {i}"));
        }
        assert_eq!(r.count(), 5);
        assert_eq!(
            r.message(),
            "5 spans rejected: reason 0; reason 1; reason 2; ..."
        );
    }

    #[test]
    fn attribute_keys_come_in_jsonb_order_and_duplicates_keep_theirs() {
        let kv = |k: &str, v: i64| KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(Value::IntValue(v)),
            }),
            ..Default::default()
        };
        let attrs = [
            kv("service.name", 1),
            kv("b", 2),
            kv("host.name", 3),
            kv("a", 4),
            kv("b", 5),
        ];
        assert_eq!(
            attributes_json(&attrs),
            r#"{"a":4,"b":2,"b":5,"host.name":3,"service.name":1}"#
        );
    }

    #[test]
    fn hex_is_lowercase_and_ids_are_checked() {
        assert_eq!(hex(&[0x0a, 0xff, 0x00]), "0aff00");
        assert_eq!(id_hex(&[1; 8], 8).as_deref(), Ok("0101010101010101"));
        assert!(id_hex(&[0; 8], 8).is_err(), "all zeros is invalid");
        assert!(id_hex(&[1; 7], 8).is_err());
    }
}
