//! What a request body will cost once decoded, read from its bytes without decoding it
//! and without allocating: how many spans, how many length-delimited elements (each one a
//! `String`, `Vec` or struct after decoding), how deep it nests.
//!
//! Decoding multiplies memory: an empty span is 2 bytes of protobuf (3 of JSON) and
//! hundreds once decoded and mapped, so 8 MB of them took 1.6 GB. The receivers count
//! first, refuse what is over the limits, and reserve the decode budget for the rest
//! (see `admission`).

/// How deep a body may nest: messages in protobuf, objects and arrays in JSON. The fixed
/// structure takes 4 to 10 levels down to an attribute value, and each level of AnyValue
/// nesting (array or key-value list) 2 (protobuf) or 3 to 4 (JSON), so this leaves about
/// 25 levels of nested attribute values in either encoding. Below prost's own limit (100)
/// and serde_json's (128), so the decoders never hit theirs.
pub const MAX_DEPTH: usize = 64;

/// The shape of a body, as counted before decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Shape {
    /// Spans (an upper bound for JSON: see [`json`]).
    pub spans: u64,
    /// Length-delimited protobuf fields (strings, bytes, messages), or JSON strings,
    /// objects and arrays, spans included.
    pub elements: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error("invalid protobuf: {0}")]
    Protobuf(&'static str),
    #[error("invalid JSON: {0}")]
    Json(&'static str),
    #[error("the request nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// The protobuf messages whose fields matter: those that contain other messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Msg {
    Request,
    ResourceSpans,
    Resource,
    EntityRef,
    ScopeSpans,
    Scope,
    Span,
    Event,
    Link,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
}

impl Msg {
    /// The message type of field `field` of `self`, if it is a message (field numbers
    /// from opentelemetry-proto's trace, resource and common packages).
    fn child(self, field: u64) -> Option<Msg> {
        use Msg::*;
        Some(match (self, field) {
            (Request, 1) => ResourceSpans,
            (ResourceSpans, 1) => Resource,
            (ResourceSpans, 2) => ScopeSpans,
            (Resource, 1) | (Scope, 3) | (Span, 9) | (Event, 3) | (Link, 4) => KeyValue,
            (Resource, 3) => EntityRef,
            (ScopeSpans, 1) => Scope,
            (ScopeSpans, 2) => Span,
            (Span, 11) => Event,
            (Span, 13) => Link,
            (KeyValue, 2) | (ArrayValue, 1) => AnyValue,
            (AnyValue, 5) => ArrayValue,
            (AnyValue, 6) => KeyValueList,
            (KeyValueList, 1) => KeyValue,
            // Span.status (15) holds only a string and an enum: counted as an element,
            // nothing inside it can multiply.
            _ => return None,
        })
    }
}

/// Counts an `ExportTraceServiceRequest` in protobuf. Unknown fields are skipped as the
/// decoder skips them; groups (unused by OTLP, deprecated in protobuf) are refused.
pub fn protobuf(body: &[u8]) -> Result<Shape, ScanError> {
    let mut shape = Shape::default();
    scan_message(body, Msg::Request, 0, &mut shape)?;
    Ok(shape)
}

fn scan_message(buf: &[u8], msg: Msg, depth: usize, shape: &mut Shape) -> Result<(), ScanError> {
    let mut at = 0;
    while at < buf.len() {
        let tag = varint(buf, &mut at)?;
        let field = tag >> 3;
        if field == 0 {
            return Err(ScanError::Protobuf("field number 0"));
        }
        match tag & 7 {
            0 => {
                varint(buf, &mut at)?;
            }
            1 => at = skip(buf, at, 8)?,
            5 => at = skip(buf, at, 4)?,
            2 => {
                let len = usize::try_from(varint(buf, &mut at)?)
                    .map_err(|_| ScanError::Protobuf("length out of range"))?;
                let end = skip(buf, at, len)?;
                shape.elements += 1;
                if let Some(child) = msg.child(field) {
                    if depth + 1 > MAX_DEPTH {
                        return Err(ScanError::TooDeep);
                    }
                    if child == Msg::Span {
                        shape.spans += 1;
                    }
                    scan_message(&buf[at..end], child, depth + 1, shape)?;
                }
                at = end;
            }
            3 | 4 => return Err(ScanError::Protobuf("groups are not supported")),
            _ => return Err(ScanError::Protobuf("invalid wire type")),
        }
    }
    Ok(())
}

fn skip(buf: &[u8], at: usize, len: usize) -> Result<usize, ScanError> {
    at.checked_add(len)
        .filter(|end| *end <= buf.len())
        .ok_or(ScanError::Protobuf(
            "a field runs past the end of its message",
        ))
}

fn varint(buf: &[u8], at: &mut usize) -> Result<u64, ScanError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let Some(&b) = buf.get(*at) else {
            return Err(ScanError::Protobuf("truncated varint"));
        };
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(ScanError::Protobuf("varint longer than 10 bytes"))
}

/// Counts an OTLP/JSON body. Not a validator (the parser is): it follows strings,
/// objects and arrays only. Spans are the objects directly inside an array under a key
/// `"spans"`; a key written with escapes might decode to `spans`, so arrays under such
/// keys count as spans too, which keeps the count an upper bound.
pub fn json(body: &[u8]) -> Result<Shape, ScanError> {
    // Per open container: whether it is an array, and whether it holds spans.
    let mut is_array = [false; MAX_DEPTH + 1];
    let mut holds_spans = [false; MAX_DEPTH + 1];
    let mut depth = 0usize;
    let mut shape = Shape::default();
    // The last key read whose value has not started yet could name spans.
    let mut spans_key = false;
    let mut at = 0;
    while at < body.len() {
        match body[at] {
            b'"' => {
                let start = at + 1;
                let (end, escaped) = string_end(body, start)?;
                at = end + 1;
                shape.elements += 1;
                let next = body[at..]
                    .iter()
                    .position(|b| !b.is_ascii_whitespace())
                    .map(|i| body[at + i]);
                if next == Some(b':') {
                    spans_key = escaped || &body[start..end] == b"spans";
                    continue;
                }
                spans_key = false;
            }
            open @ (b'{' | b'[') => {
                if depth == MAX_DEPTH {
                    return Err(ScanError::TooDeep);
                }
                shape.elements += 1;
                if open == b'{' && depth > 0 && is_array[depth] && holds_spans[depth] {
                    shape.spans += 1;
                }
                depth += 1;
                is_array[depth] = open == b'[';
                holds_spans[depth] = open == b'[' && spans_key;
                spans_key = false;
                at += 1;
            }
            b'}' | b']' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or(ScanError::Json("unbalanced brackets"))?;
                at += 1;
            }
            _ => {
                if !body[at].is_ascii_whitespace() && !matches!(body[at], b',' | b':') {
                    spans_key = false;
                }
                at += 1;
            }
        }
    }
    Ok(shape)
}

/// The index of the quote closing the string that starts at `start`, and whether the
/// string has escapes.
fn string_end(body: &[u8], start: usize) -> Result<(usize, bool), ScanError> {
    let mut escaped = false;
    let mut at = start;
    while at < body.len() {
        match body[at] {
            b'"' => return Ok((at, escaped)),
            b'\\' => {
                escaped = true;
                at += 2;
            }
            _ => at += 1,
        }
    }
    Err(ScanError::Json("unterminated string"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, ArrayValue, KeyValue};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    fn request(spans: usize, attrs: usize) -> ExportTraceServiceRequest {
        let span = Span {
            name: "s".into(),
            attributes: (0..attrs)
                .map(|i| KeyValue {
                    key: format!("k{i}"),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::IntValue(1)),
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span; spans],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn protobuf_spans_and_elements_are_counted() {
        let shape = protobuf(&request(3, 2).encode_to_vec()).unwrap();
        assert_eq!(shape.spans, 3);
        // rs + ss + 3 × (span + name + 2 × (kv + key + anyvalue)).
        assert_eq!(shape.elements, 2 + 3 * (2 + 2 * 3));
    }

    #[test]
    fn empty_spans_count_as_spans() {
        let body = request(1000, 0).encode_to_vec();
        assert_eq!(protobuf(&body).unwrap().spans, 1000);
    }

    #[test]
    fn protobuf_nesting_is_bounded() {
        let mut value = AnyValue::default();
        for _ in 0..40 {
            value = AnyValue {
                value: Some(any_value::Value::ArrayValue(ArrayValue {
                    values: vec![value],
                })),
            };
        }
        let mut req = request(1, 0);
        req.resource_spans[0].scope_spans[0].spans[0].attributes = vec![KeyValue {
            key: "deep".into(),
            value: Some(value),
            ..Default::default()
        }];
        assert_eq!(protobuf(&req.encode_to_vec()), Err(ScanError::TooDeep));
    }

    #[test]
    fn truncated_protobuf_is_refused() {
        let body = request(2, 1).encode_to_vec();
        assert!(protobuf(&body[..body.len() - 1]).is_err());
        assert!(protobuf(&[0x0a, 0xff]).is_err());
        assert!(protobuf(&[0x00]).is_err());
    }

    #[test]
    fn json_spans_are_counted_even_behind_escaped_keys() {
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{},{"name":"a{[\"x"},{}]}]},
            {"scopeSpans":[{"sp\u0061ns":[{}, {}]}]}]}"#;
        let shape = json(body).unwrap();
        assert_eq!(shape.spans, 5);
        let plain = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"spans","value":{}}]}]}]}]}"#;
        assert_eq!(json(plain).unwrap().spans, 1);
    }

    #[test]
    fn json_nesting_is_bounded() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(json(deep.as_bytes()), Err(ScanError::TooDeep));
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(json(ok.as_bytes()).is_ok());
        assert!(json(b"]").is_err());
        assert!(json(b"\"abc").is_err());
    }
}
