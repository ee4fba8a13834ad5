//! The syntax of conditions on spans: `span.…` on trace summaries and `attributes.…` /
//! `resource.…` on span rows.
//!
//! OpenTelemetry attribute keys are case-sensitive and often dotted
//! (`http.status_code`, `k8s.namespace.name`), so everything after an attribute prefix is
//! one key, kept as written, while the prefix itself is case-insensitive like any key.
//! Which prefixes an entity accepts is the planner's business.

use crate::error::ParseError;
use crate::lexer::Token;
use crate::limits::Limits;

/// Prefixes whose remainder is an attribute key, lowercase.
const ATTRIBUTE_PREFIXES: [&str; 4] = [
    "span.attributes.",
    "span.resource.",
    "attributes.",
    "resource.",
];

/// Prefix of every field that is a condition on spans of a trace.
const SPAN_PREFIX: &str = "span.";

/// The field name a filter carries: lowercased, except an attribute key after its prefix.
pub(crate) fn field_name(key: &str) -> String {
    match attribute_prefix(key) {
        Some(prefix) => format!("{prefix}{}", &key[prefix.len()..]),
        None => key.to_ascii_lowercase(),
    }
}

/// The attribute prefix `key` starts with (ASCII case ignored), lowercase.
pub(crate) fn attribute_prefix(key: &str) -> Option<&'static str> {
    ATTRIBUTE_PREFIXES.into_iter().find(|prefix| {
        key.get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    })
}

/// Whether a filter on `key` is a test of spans (counted against
/// [`Limits::max_span_conditions`]).
pub(crate) fn is_span_condition(key: &str) -> bool {
    attribute_prefix(key).is_some()
        || key
            .get(..SPAN_PREFIX.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(SPAN_PREFIX))
}

/// An attribute key must be there and be of bounded length.
pub(crate) fn check_key(token: &Token, limits: &Limits) -> Result<(), ParseError> {
    let Some(prefix) = attribute_prefix(token.key) else {
        return Ok(());
    };
    let key = &token.key[prefix.len()..];
    let key_offset = token.offset + usize::from(token.negated) + prefix.len();
    if key.is_empty() {
        return Err(ParseError::expected(
            key_offset,
            &format!("an attribute key after `{prefix}`"),
            ":",
        ));
    }
    if key.len() > limits.max_attribute_key_len {
        return Err(ParseError::new(
            key_offset,
            key,
            format!(
                "attribute key is {} bytes long, more than the limit of {}",
                key.len(),
                limits.max_attribute_key_len
            ),
        ));
    }
    Ok(())
}

/// The `n`th span condition of the query (1-based) must be within the limit.
pub(crate) fn check_count(n: usize, token: &Token, limits: &Limits) -> Result<(), ParseError> {
    if n <= limits.max_span_conditions {
        return Ok(());
    }
    Err(ParseError::new(
        token.offset,
        token.key,
        format!(
            "more conditions on spans than the limit of {}",
            limits.max_span_conditions
        ),
    ))
}
