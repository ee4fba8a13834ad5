//! Conditions on the spans of a trace, evaluated in plain Rust over the stored spans: the
//! independent side of the span search tests. The same values are written as SRQL by
//! [`Cond::srql`]; the service's parser, planner and SQL are what is under test.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::RawSpan;

/// One `[!]span.…` condition.
#[derive(Debug, Clone)]
pub struct Cond {
    pub negated: bool,
    pub on: On,
}

#[derive(Debug, Clone)]
pub enum On {
    Name(Text),
    ServiceName(Text),
    Kind(i32),
    StatusCode(i32),
    DurationOver(f64),
    /// `resource` picks the resource attributes.
    Attr {
        resource: bool,
        key: String,
        test: AttrTest,
    },
}

#[derive(Debug, Clone)]
pub enum Text {
    Eq(String),
    Like(String),
}

#[derive(Debug, Clone)]
pub enum AttrTest {
    /// Any of these values as written.
    AnyOf(Vec<String>),
    Like(String),
    AtLeast(f64),
    Below(f64),
    Exists,
}

pub fn pos(on: On) -> Cond {
    Cond { negated: false, on }
}

pub fn neg(on: On) -> Cond {
    Cond { negated: true, on }
}

pub fn attr(key: &str, test: AttrTest) -> On {
    On::Attr {
        resource: false,
        key: key.into(),
        test,
    }
}

pub fn resource(key: &str, test: AttrTest) -> On {
    On::Attr {
        resource: true,
        key: key.into(),
        test,
    }
}

pub fn eq(value: &str) -> AttrTest {
    AttrTest::AnyOf(vec![value.into()])
}

impl Cond {
    /// The condition as an SRQL token on trace summaries.
    pub fn srql(&self) -> String {
        let bang = if self.negated { "!" } else { "" };
        let text = |t: &Text| match t {
            Text::Eq(v) | Text::Like(v) => format!("\"{v}\""),
        };
        let body = match &self.on {
            On::Name(t) => format!("span.name:{}", text(t)),
            On::ServiceName(t) => format!("span.service_name:{}", text(t)),
            On::Kind(k) => format!("span.kind:{k}"),
            On::StatusCode(c) => format!("span.status_code:{c}"),
            On::DurationOver(ms) => format!("span.duration_ms:>{ms}"),
            On::Attr {
                resource,
                key,
                test,
            } => {
                let map = if *resource { "resource" } else { "attributes" };
                let value = match test {
                    AttrTest::AnyOf(vs) if vs.len() == 1 => vs[0].clone(),
                    AttrTest::AnyOf(vs) => format!("({})", vs.join(",")),
                    AttrTest::Like(p) => format!("\"{p}\""),
                    AttrTest::AtLeast(n) => format!(">={n}"),
                    AttrTest::Below(n) => format!("<{n}"),
                    AttrTest::Exists => "*".into(),
                };
                format!("span.{map}.{key}:{value}")
            }
        };
        format!("{bang}{body}")
    }
}

/// SQL `ILIKE` for ASCII text: `%` any run, `_` one character.
pub fn ilike(text: &str, pattern: &str) -> bool {
    fn go(t: &[u8], p: &[u8]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((b'%', rest)) => (0..=t.len()).any(|i| go(&t[i..], rest)),
            Some((b'_', rest)) => !t.is_empty() && go(&t[1..], rest),
            Some((c, rest)) => t.first() == Some(c) && go(&t[1..], rest),
        }
    }
    go(
        text.to_lowercase().as_bytes(),
        pattern.to_lowercase().as_bytes(),
    )
}

fn text_matches(value: Option<&str>, t: &Text) -> bool {
    match (value, t) {
        (Some(v), Text::Eq(x)) => v == x,
        (Some(v), Text::Like(p)) => ilike(v, p),
        (None, _) => false,
    }
}

/// A written value equals a stored JSON value: the same string, the same number, or the
/// same boolean.
fn attr_equals(stored: &Value, written: &str) -> bool {
    match stored {
        Value::String(s) => s == written,
        Value::Number(n) => written
            .parse::<f64>()
            .ok()
            .filter(|_| serde_json::from_str::<serde_json::Number>(written).is_ok())
            .is_some_and(|w| n.as_f64() == Some(w)),
        Value::Bool(b) => written == if *b { "true" } else { "false" },
        _ => false,
    }
}

/// The value's text as PostgreSQL's `->>` gives it, for the scalars the tests store.
fn attr_text(stored: &Value) -> Option<String> {
    match stored {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn attr_matches(map: Option<&Value>, key: &str, test: &AttrTest) -> bool {
    let Some(stored) = map.and_then(|m| m.as_object()).and_then(|m| m.get(key)) else {
        return false;
    };
    match test {
        AttrTest::Exists => true,
        AttrTest::AnyOf(vs) => vs.iter().any(|v| attr_equals(stored, v)),
        AttrTest::Like(p) => attr_text(stored).is_some_and(|t| ilike(&t, p)),
        AttrTest::AtLeast(n) => stored
            .as_f64()
            .is_some_and(|x| stored.is_number() && x >= *n),
        AttrTest::Below(n) => stored
            .as_f64()
            .is_some_and(|x| stored.is_number() && x < *n),
    }
}

pub fn span_matches(s: &RawSpan, on: &On) -> bool {
    match on {
        On::Name(t) => text_matches(s.name.as_deref(), t),
        On::ServiceName(t) => text_matches(s.service_name.as_deref(), t),
        On::Kind(k) => s.kind == Some(*k),
        On::StatusCode(c) => s.status_code == Some(*c),
        On::DurationOver(ms) => {
            let nanos = match (s.start, s.end) {
                (Some(a), Some(b)) => (b - a).max(0),
                _ => 0,
            };
            nanos as f64 / 1e6 > *ms
        }
        On::Attr {
            resource,
            key,
            test,
        } => {
            let map = if *resource {
                s.resource_attributes.as_ref()
            } else {
                s.attributes.as_ref()
            };
            attr_matches(map, key, test)
        }
    }
}

/// Positive conditions all hold on one span; no span matches a negated one.
pub fn trace_matches(spans: &[&RawSpan], conds: &[Cond]) -> bool {
    let positive: Vec<&On> = conds.iter().filter(|c| !c.negated).map(|c| &c.on).collect();
    let some_span = positive.is_empty()
        || spans
            .iter()
            .any(|s| positive.iter().all(|on| span_matches(s, on)));
    some_span
        && conds
            .iter()
            .filter(|c| c.negated)
            .all(|c| !spans.iter().any(|s| span_matches(s, &c.on)))
}

/// The ids of the traces whose spans satisfy `conds`.
pub fn matching_traces(spans: &[RawSpan], conds: &[Cond]) -> BTreeSet<String> {
    let mut by_trace: BTreeMap<&str, Vec<&RawSpan>> = BTreeMap::new();
    for s in spans {
        by_trace.entry(&s.trace_id).or_default().push(s);
    }
    by_trace
        .into_iter()
        .filter(|(_, spans)| trace_matches(spans, conds))
        .map(|(id, _)| id.to_string())
        .collect()
}
