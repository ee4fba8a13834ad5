//! OTLP/JSON request bodies (the OTLP specification's "JSON Protobuf Encoding").
//!
//! Our own model rather than the generated types' serde support, because the encoding
//! is more lenient than a derive: per the protobuf JSON mapping every integer may arrive
//! as a number or a decimal string (and 64-bit ones usually are strings), enums as
//! integers (or their names), `null` means the default, and unknown fields are ignored.
//! Ids are hex strings, not base64; a span whose id is not hex is rejected on its own,
//! like an id of the wrong length in protobuf, instead of failing the request.

use std::fmt;

use base64::Engine as _;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1 as common;
use opentelemetry_proto::tonic::resource::v1 as resource;
use opentelemetry_proto::tonic::trace::v1 as trace;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::convert::Rejections;

/// Parses an OTLP/JSON `ExportTraceServiceRequest`. Spans with ids that are not hex are
/// left out and counted in `rejections`; anything else malformed fails the whole body.
pub fn parse(
    body: &[u8],
    rejections: &mut Rejections,
) -> Result<ExportTraceServiceRequest, String> {
    let req: Request = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    Ok(ExportTraceServiceRequest {
        resource_spans: req
            .resource_spans
            .into_iter()
            .map(|rs| rs.into_proto(rejections))
            .collect::<Result<_, _>>()?,
    })
}

/// `null` is the default value for every field in the protobuf JSON mapping.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Request {
    #[serde(deserialize_with = "nullable")]
    resource_spans: Vec<ResourceSpans>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ResourceSpans {
    resource: Option<Resource>,
    #[serde(deserialize_with = "nullable")]
    scope_spans: Vec<ScopeSpans>,
    #[serde(deserialize_with = "nullable")]
    schema_url: String,
}

impl ResourceSpans {
    fn into_proto(self, rejections: &mut Rejections) -> Result<trace::ResourceSpans, String> {
        Ok(trace::ResourceSpans {
            resource: self.resource.map(Resource::into_proto).transpose()?,
            scope_spans: self
                .scope_spans
                .into_iter()
                .map(|ss| ss.into_proto(rejections))
                .collect::<Result<_, _>>()?,
            schema_url: self.schema_url,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Resource {
    #[serde(deserialize_with = "nullable")]
    attributes: Vec<KeyValue>,
    dropped_attributes_count: Int<u32>,
}

impl Resource {
    fn into_proto(self) -> Result<resource::Resource, String> {
        Ok(resource::Resource {
            attributes: key_values(self.attributes)?,
            dropped_attributes_count: self.dropped_attributes_count.0,
            entity_refs: Vec::new(),
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ScopeSpans {
    scope: Option<Scope>,
    #[serde(deserialize_with = "nullable")]
    spans: Vec<Span>,
    #[serde(deserialize_with = "nullable")]
    schema_url: String,
}

impl ScopeSpans {
    fn into_proto(self, rejections: &mut Rejections) -> Result<trace::ScopeSpans, String> {
        let mut spans = Vec::with_capacity(self.spans.len());
        for s in self.spans {
            if let Some(span) = s.into_proto(rejections)? {
                spans.push(span);
            }
        }
        Ok(trace::ScopeSpans {
            scope: self.scope.map(Scope::into_proto).transpose()?,
            spans,
            schema_url: self.schema_url,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Scope {
    #[serde(deserialize_with = "nullable")]
    name: String,
    #[serde(deserialize_with = "nullable")]
    version: String,
    #[serde(deserialize_with = "nullable")]
    attributes: Vec<KeyValue>,
    dropped_attributes_count: Int<u32>,
}

impl Scope {
    fn into_proto(self) -> Result<common::InstrumentationScope, String> {
        Ok(common::InstrumentationScope {
            name: self.name,
            version: self.version,
            attributes: key_values(self.attributes)?,
            dropped_attributes_count: self.dropped_attributes_count.0,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Span {
    #[serde(deserialize_with = "nullable")]
    trace_id: String,
    #[serde(deserialize_with = "nullable")]
    span_id: String,
    #[serde(deserialize_with = "nullable")]
    trace_state: String,
    #[serde(deserialize_with = "nullable")]
    parent_span_id: String,
    flags: Int<u32>,
    #[serde(deserialize_with = "nullable")]
    name: String,
    kind: Enum<SpanKind>,
    start_time_unix_nano: Int<u64>,
    end_time_unix_nano: Int<u64>,
    #[serde(deserialize_with = "nullable")]
    attributes: Vec<KeyValue>,
    dropped_attributes_count: Int<u32>,
    #[serde(deserialize_with = "nullable")]
    events: Vec<Event>,
    dropped_events_count: Int<u32>,
    #[serde(deserialize_with = "nullable")]
    links: Vec<Link>,
    dropped_links_count: Int<u32>,
    status: Option<Status>,
}

impl Span {
    /// `None` when the span is rejected for an id that is not hex.
    fn into_proto(self, rejections: &mut Rejections) -> Result<Option<trace::Span>, String> {
        let ids = (|| {
            Ok::<_, String>((
                unhex(&self.trace_id).map_err(|e| format!("trace_id {e}"))?,
                unhex(&self.span_id).map_err(|e| format!("span_id {e}"))?,
                unhex(&self.parent_span_id).map_err(|e| format!("parent_span_id {e}"))?,
            ))
        })();
        let (trace_id, span_id, parent_span_id) = match ids {
            Ok(ids) => ids,
            Err(e) => {
                let name: String = self.name.chars().take(64).collect();
                rejections.add(|| format!("span {name:?}: {e}"));
                return Ok(None);
            }
        };
        Ok(Some(trace::Span {
            trace_id,
            span_id,
            trace_state: self.trace_state,
            parent_span_id,
            flags: self.flags.0,
            name: self.name,
            kind: self.kind.0,
            start_time_unix_nano: self.start_time_unix_nano.0,
            end_time_unix_nano: self.end_time_unix_nano.0,
            attributes: key_values(self.attributes)?,
            dropped_attributes_count: self.dropped_attributes_count.0,
            events: self
                .events
                .into_iter()
                .map(Event::into_proto)
                .collect::<Result<_, _>>()?,
            dropped_events_count: self.dropped_events_count.0,
            links: self
                .links
                .into_iter()
                .map(Link::into_proto)
                .collect::<Result<_, _>>()?,
            dropped_links_count: self.dropped_links_count.0,
            status: self.status.map(|s| trace::Status {
                message: s.message,
                code: s.code.0,
            }),
        }))
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Event {
    time_unix_nano: Int<u64>,
    #[serde(deserialize_with = "nullable")]
    name: String,
    #[serde(deserialize_with = "nullable")]
    attributes: Vec<KeyValue>,
    dropped_attributes_count: Int<u32>,
}

impl Event {
    fn into_proto(self) -> Result<trace::span::Event, String> {
        Ok(trace::span::Event {
            time_unix_nano: self.time_unix_nano.0,
            name: self.name,
            attributes: key_values(self.attributes)?,
            dropped_attributes_count: self.dropped_attributes_count.0,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Link {
    #[serde(deserialize_with = "nullable")]
    trace_id: String,
    #[serde(deserialize_with = "nullable")]
    span_id: String,
    #[serde(deserialize_with = "nullable")]
    trace_state: String,
    #[serde(deserialize_with = "nullable")]
    attributes: Vec<KeyValue>,
    dropped_attributes_count: Int<u32>,
    flags: Int<u32>,
}

impl Link {
    fn into_proto(self) -> Result<trace::span::Link, String> {
        Ok(trace::span::Link {
            trace_id: unhex(&self.trace_id).map_err(|e| format!("link trace_id {e}"))?,
            span_id: unhex(&self.span_id).map_err(|e| format!("link span_id {e}"))?,
            trace_state: self.trace_state,
            attributes: key_values(self.attributes)?,
            dropped_attributes_count: self.dropped_attributes_count.0,
            flags: self.flags.0,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Status {
    #[serde(deserialize_with = "nullable")]
    message: String,
    code: Enum<StatusCode>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct KeyValue {
    #[serde(deserialize_with = "nullable")]
    key: String,
    value: Option<AnyValue>,
}

fn key_values(kvs: Vec<KeyValue>) -> Result<Vec<common::KeyValue>, String> {
    kvs.into_iter()
        .map(|kv| {
            Ok(common::KeyValue {
                value: kv.value.map(AnyValue::into_proto).transpose()?,
                key: kv.key,
                key_strindex: 0,
            })
        })
        .collect()
}

/// At most one member is set; should a sender set several, the first in this order wins.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct AnyValue {
    string_value: Option<String>,
    bool_value: Option<bool>,
    int_value: Option<Int<i64>>,
    double_value: Option<Double>,
    array_value: Option<ArrayValue>,
    kvlist_value: Option<KeyValueList>,
    bytes_value: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ArrayValue {
    #[serde(deserialize_with = "nullable")]
    values: Vec<AnyValue>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct KeyValueList {
    #[serde(deserialize_with = "nullable")]
    values: Vec<KeyValue>,
}

impl AnyValue {
    fn into_proto(self) -> Result<common::AnyValue, String> {
        use common::any_value::Value;
        let value = if let Some(s) = self.string_value {
            Some(Value::StringValue(s))
        } else if let Some(b) = self.bool_value {
            Some(Value::BoolValue(b))
        } else if let Some(i) = self.int_value {
            Some(Value::IntValue(i.0))
        } else if let Some(d) = self.double_value {
            Some(Value::DoubleValue(d.0))
        } else if let Some(a) = self.array_value {
            Some(Value::ArrayValue(common::ArrayValue {
                values: a
                    .values
                    .into_iter()
                    .map(AnyValue::into_proto)
                    .collect::<Result<_, _>>()?,
            }))
        } else if let Some(kv) = self.kvlist_value {
            Some(Value::KvlistValue(common::KeyValueList {
                values: key_values(kv.values)?,
            }))
        } else if let Some(b) = self.bytes_value {
            Some(Value::BytesValue(
                base64::engine::general_purpose::STANDARD
                    .decode(b.as_bytes())
                    .map_err(|e| format!("bytesValue is not base64: {e}"))?,
            ))
        } else {
            None
        };
        Ok(common::AnyValue { value })
    }
}

/// Hex (either case) to bytes; empty is empty.
fn unhex(s: &str) -> Result<Vec<u8>, String> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return Err(format!("is not hex: odd length {}", b.len()));
    }
    b.chunks(2)
        .map(|pair| match (digit(pair[0]), digit(pair[1])) {
            (Some(hi), Some(lo)) => Ok(hi << 4 | lo),
            _ => Err(format!(
                "is not hex: {:?}",
                s.chars().take(40).collect::<String>()
            )),
        })
        .collect()
}

/// An integer written as a JSON number or as a decimal string.
#[derive(Default, Clone, Copy)]
struct Int<T>(T);

impl<'de, T> Deserialize<'de> for Int<T>
where
    T: TryFrom<i64> + TryFrom<u64> + std::str::FromStr + Default,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<T> Visitor<'_> for V<T>
        where
            T: TryFrom<i64> + TryFrom<u64> + std::str::FromStr + Default,
        {
            type Value = Int<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer, as a number or a decimal string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int<T>, E> {
                T::try_from(v)
                    .map(Int)
                    .map_err(|_| E::custom(format!("integer {v} out of range")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int<T>, E> {
                T::try_from(v)
                    .map(Int)
                    .map_err(|_| E::custom(format!("integer {v} out of range")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Int<T>, E> {
                // The JSON mapping allows exponent notation for integers (1e3); an
                // integral value within i64 is converted exactly.
                if v.fract() == 0.0 && v.abs() < 9.007_199_254_740_992e15 {
                    #[allow(clippy::cast_possible_truncation)]
                    return self.visit_i64(v as i64);
                }
                Err(E::custom(format!("{v} is not an integer")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Int<T>, E> {
                v.trim()
                    .parse::<T>()
                    .map(Int)
                    .map_err(|_| E::custom(format!("{v:?} is not an integer in range")))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Int<T>, E> {
                Ok(Int(T::default()))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A double as a JSON number, or as a string: a number, "NaN", "Infinity", "-Infinity".
struct Double(f64);

impl<'de> Deserialize<'de> for Double {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Double;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Double, E> {
                Ok(Double(v))
            }
            #[allow(clippy::cast_precision_loss)]
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Double, E> {
                Ok(Double(v as f64))
            }
            #[allow(clippy::cast_precision_loss)]
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Double, E> {
                Ok(Double(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Double, E> {
                match v {
                    "NaN" => Ok(Double(f64::NAN)),
                    "Infinity" => Ok(Double(f64::INFINITY)),
                    "-Infinity" => Ok(Double(f64::NEG_INFINITY)),
                    _ => v
                        .parse::<f64>()
                        .map(Double)
                        .map_err(|_| E::custom(format!("{v:?} is not a number"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Enum names accepted beside their numbers (the specification asks senders for
/// numbers; names are what a generic protobuf JSON printer writes).
trait EnumNames {
    const NAMES: &'static [&'static str];
}

struct SpanKind;
impl EnumNames for SpanKind {
    const NAMES: &'static [&'static str] = &[
        "SPAN_KIND_UNSPECIFIED",
        "SPAN_KIND_INTERNAL",
        "SPAN_KIND_SERVER",
        "SPAN_KIND_CLIENT",
        "SPAN_KIND_PRODUCER",
        "SPAN_KIND_CONSUMER",
    ];
}

struct StatusCode;
impl EnumNames for StatusCode {
    const NAMES: &'static [&'static str] =
        &["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];
}

/// An enum value: a number, a decimal string, or one of `E::NAMES`.
struct Enum<E>(i32, std::marker::PhantomData<E>);

impl<E> Default for Enum<E> {
    fn default() -> Self {
        Enum(0, std::marker::PhantomData)
    }
}

impl<'de, N: EnumNames> Deserialize<'de> for Enum<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(Int<i32>),
            Name(String),
        }
        let v = match Option::<Raw>::deserialize(d)? {
            None => 0,
            Some(Raw::Int(i)) => i.0,
            Some(Raw::Name(name)) => N::NAMES
                .iter()
                .position(|n| *n == name)
                .and_then(|p| i32::try_from(p).ok())
                .ok_or_else(|| de::Error::custom(format!("unknown enum value {name:?}")))?,
        };
        Ok(Enum(v, std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_span(span: serde_json::Value) -> Result<(trace::Span, Rejections), String> {
        let body = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]});
        let mut rejections = Rejections::default();
        let mut req = parse(body.to_string().as_bytes(), &mut rejections)?;
        let span = req
            .resource_spans
            .remove(0)
            .scope_spans
            .remove(0)
            .spans
            .pop();
        Ok((span.unwrap_or_default(), rejections))
    }

    #[test]
    fn integers_and_enums_in_every_allowed_spelling() {
        for (kind, want) in [
            (serde_json::json!(3), 3),
            (serde_json::json!("3"), 3),
            (serde_json::json!("SPAN_KIND_CLIENT"), 3),
            (serde_json::json!(null), 0),
        ] {
            let (s, _) = one_span(serde_json::json!({"kind": kind, "startTimeUnixNano": 5, "droppedAttributesCount": "2", "flags": 1e2}))
                .expect("parses");
            assert_eq!(
                (
                    s.kind,
                    s.start_time_unix_nano,
                    s.dropped_attributes_count,
                    s.flags
                ),
                (want, 5, 2, 100)
            );
        }
    }

    #[test]
    fn out_of_range_or_non_integral_values_fail_the_request() {
        for bad in [
            serde_json::json!({"droppedAttributesCount": -1}),
            serde_json::json!({"droppedAttributesCount": "4294967296"}),
            serde_json::json!({"startTimeUnixNano": 1.5}),
            serde_json::json!({"kind": "SPAN_KIND_SIDEWAYS"}),
            serde_json::json!({"attributes": [{"key": "b", "value": {"bytesValue": "not base64!"}}]}),
        ] {
            assert!(one_span(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_that_are_not_hex_reject_only_their_span() {
        let (s, rejections) =
            one_span(serde_json::json!({"traceId": "xyz", "name": "n"})).expect("parses");
        assert_eq!(s, trace::Span::default(), "the span is left out");
        assert_eq!(rejections.count(), 1);
        assert!(
            rejections.message().contains("trace_id is not hex"),
            "{}",
            rejections.message()
        );
        assert_eq!(unhex("0aFF"), Ok(vec![0x0a, 0xff]));
        assert!(unhex("abc").is_err());
    }
}
