//! Text -> [`Query`]: checks the text as a whole, then gives each token its meaning.
//!
//! Syntax only: field names are checked for shape, not against a schema, and comparison
//! values stay text. The planner knows which fields exist and what type they have.
//!
//! What is accepted, in brief (the query corpus under the repository's `tests/queries` shows every form):
//! - tokens `[!]KEY:VALUE` separated by spaces, tabs or newlines; `KEY` is
//!   `[A-Za-z_][A-Za-z0-9_.]*`, case-insensitive, except the attribute key after
//!   `span.attributes.`, `span.resource.`, `attributes.` or `resource.` (a bare `*` value
//!   there asks that the key exists);
//! - `VALUE` is bare (up to the next whitespace; a backslash escapes the next character,
//!   whitespace included), quoted with `"` or `'` (`\"`, `\'` and
//!   `\\` are escapes, any other backslash is literal), or a list `(a,b)` / `[a,b]` whose
//!   items may be quoted and may have spaces around them;
//! - quotes and brackets only have meaning at the start of a value or list item, so
//!   `name:O'Brien` is the literal `O'Brien`;
//! - a bare filter value starting with `>`, `>=`, `<`, `<=` is a comparison; one containing
//!   `%` (bare or quoted) is a LIKE pattern;
//! - control characters are rejected anywhere, even quoted.

use crate::ast::{CompareOp, Entity, Filter, FilterValue, Query, SortKey};
use crate::error::{excerpt, ParseError};
use crate::lexer::{
    content_offset, found_at, is_field_name, is_space, text_value, Item, Lexer, Token, Value,
};
use crate::limits::Limits;
use crate::{span_condition, stats, time};

/// Parses one SRQL query.
///
/// Keys are case-insensitive. `in`, `time`/`timeframe`, `limit` and `rollup_stats` keep
/// their last occurrence; `sort`/`order` keys and `stats` expressions accumulate in query
/// order; any other key is a filter. A sort key without a direction is descending, the
/// useful order for the time and duration fields that lists are sorted by.
pub fn parse(text: &str, limits: &Limits) -> Result<Query, ParseError> {
    check_length(text, limits)?;
    check_characters(text)?;
    let mut query = Query {
        entity: None,
        time: None,
        time_offset: 0,
        filters: Vec::new(),
        sort: Vec::new(),
        limit: None,
        stats: None,
        rollup_stats: None,
        ignored_keys: Vec::new(),
    };
    let mut tokens = 0usize;
    for token in Lexer::new(text) {
        apply(&mut query, &token?, text, limits)?;
        tokens += 1;
    }
    if tokens == 0 {
        return Err(ParseError::new(
            0,
            text,
            "expected at least one `key:value` token, found an empty query".to_owned(),
        ));
    }
    Ok(query)
}

/// Checked before anything else so that the cost of every later step is bounded.
fn check_length(text: &str, limits: &Limits) -> Result<(), ParseError> {
    if text.len() <= limits.max_query_len {
        return Ok(());
    }
    Err(ParseError::new(
        limits.max_query_len,
        "",
        format!(
            "query is {} bytes long, more than the limit of {} bytes",
            text.len(),
            limits.max_query_len
        ),
    ))
}

/// Control characters (NUL above all) have no business in a one-line query and would end
/// up in logs and bind parameters; reject them wherever they are, quoted or not.
fn check_characters(text: &str) -> Result<(), ParseError> {
    let Some((offset, c)) = text
        .char_indices()
        .find(|&(_, c)| c.is_control() && !(c.is_ascii() && is_space(c as u8)))
    else {
        return Ok(());
    };
    let found = if c == '\0' {
        "a NUL byte".to_owned()
    } else {
        format!("control character `{}`", excerpt(&c.to_string()))
    };
    Err(ParseError::new(
        offset,
        &text[offset..offset + c.len_utf8()],
        format!("expected printable text, found {found}"),
    ))
}

/// Keys upstream ServiceRadar accepts that change nothing for traces: `window:` buckets
/// its continuous aggregates, `mode:` and `bounded:` choose streaming or snapshot reads,
/// `include_deleted:` concerns device inventories. Accepted and reported, never silently.
pub const IGNORED_KEYS: [&str; 4] = ["window", "mode", "bounded", "include_deleted"];

/// Keys that are not filters; none of them can be negated.
const RESERVED_KEYS: [&str; 12] = [
    "window",
    "mode",
    "bounded",
    "include_deleted",
    "in",
    "time",
    "timeframe",
    "sort",
    "order",
    "limit",
    "stats",
    "rollup_stats",
];

fn apply(query: &mut Query, token: &Token, text: &str, limits: &Limits) -> Result<(), ParseError> {
    let key = token.key.to_ascii_lowercase();
    if token.negated && RESERVED_KEYS.contains(&key.as_str()) {
        return Err(ParseError::expected(
            token.offset,
            "a field to filter on after `!`",
            token.key,
        ));
    }
    match key.as_str() {
        "in" => query.entity = Some(entity(token)?),
        "time" | "timeframe" => {
            query.time = Some(time::time_spec(token)?);
            query.time_offset = token.offset;
        }
        "sort" | "order" => query.sort.extend(sort_keys(token)?),
        "limit" => query.limit = Some(limit(token)?),
        "stats" => {
            let stats = query.stats.get_or_insert_with(Default::default);
            stats::parse_into(token, stats, limits)?;
        }
        "rollup_stats" => query.rollup_stats = Some(rollup_name(token)?),
        ignored if IGNORED_KEYS.contains(&ignored) => {
            if !query.ignored_keys.iter().any(|k| k == ignored) {
                query.ignored_keys.push(ignored.to_owned());
            }
        }
        _ if span_condition::is_span_condition(token.key) => {
            span_condition::check_key(token, limits)?;
            let n = 1 + query
                .filters
                .iter()
                .filter(|f| span_condition::is_span_condition(&f.field))
                .count();
            span_condition::check_count(n, token, limits)?;
            let field = span_condition::field_name(token.key);
            query.filters.push(filter(token, field, text, limits)?);
        }
        _ => query.filters.push(filter(token, key, text, limits)?),
    }
    Ok(())
}

const ENTITY_NAMES: &str = "`otel_trace_summaries`, `trace_summaries`, `traces_summaries`, `traces`, `otel_traces` or `trace_spans`";

fn entity(token: &Token) -> Result<Entity, ParseError> {
    let expected = || format!("one of {ENTITY_NAMES} after `in:`");
    let name = text_value(token, &expected())?;
    match name.to_ascii_lowercase().as_str() {
        "otel_trace_summaries" | "trace_summaries" | "traces_summaries" => {
            Ok(Entity::TraceSummaries)
        }
        "traces" | "otel_traces" | "trace_spans" => Ok(Entity::Traces),
        _ => Err(ParseError::expected(
            token.value_offset,
            &expected(),
            token.raw_value,
        )),
    }
}

/// `limit:0` is kept as 0: upstream answers it with a page of one row, and the planner
/// does the same.
fn limit(token: &Token) -> Result<u32, ParseError> {
    const EXPECTED: &str = "a non-negative integer after `limit:`";
    let digits = text_value(token, EXPECTED)?;
    let fail = |expected: &str| {
        Err(ParseError::expected(
            token.value_offset,
            expected,
            token.raw_value,
        ))
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return fail(EXPECTED);
    }
    match digits.parse::<u32>() {
        Ok(n) => Ok(n),
        // Only digits, so the one way to fail is overflow.
        Err(_) => fail(&format!(
            "a non-negative integer of at most {} after `limit:`",
            u32::MAX
        )),
    }
}

fn rollup_name(token: &Token) -> Result<String, ParseError> {
    const EXPECTED: &str = "a rollup name of letters, digits and `_` after `rollup_stats:`";
    let name = text_value(token, EXPECTED)?;
    let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        return Err(ParseError::expected(
            token.value_offset,
            EXPECTED,
            token.raw_value,
        ));
    }
    Ok(name.to_ascii_lowercase())
}

/// `FIELD[:asc|desc]`, comma separated; spaces around commas only inside quotes.
fn sort_keys(token: &Token) -> Result<Vec<SortKey>, ParseError> {
    let value = text_value(token, "`FIELD[:asc|desc]` after `sort:`")?;
    let base = content_offset(token);
    let mut keys = Vec::new();
    let mut start = 0;
    for item in value.split(',') {
        let trimmed = item.trim_start();
        let offset = base + start + (item.len() - trimmed.len());
        keys.push(sort_key(trimmed.trim_end(), offset, token)?);
        start += item.len() + 1;
    }
    Ok(keys)
}

fn sort_key(item: &str, offset: usize, token: &Token) -> Result<SortKey, ParseError> {
    let (field, direction) = match item.split_once(':') {
        Some((field, direction)) => (field, Some(direction)),
        None => (item, None),
    };
    if !is_field_name(field) {
        let found = if item.is_empty() {
            token.raw_value
        } else {
            field
        };
        return Err(ParseError::expected(offset, "a sort field name", found));
    }
    let descending = match direction {
        None => true,
        Some(direction) if direction.eq_ignore_ascii_case("desc") => true,
        Some(direction) if direction.eq_ignore_ascii_case("asc") => false,
        Some(direction) => {
            return Err(ParseError::expected(
                offset + field.len() + 1,
                &format!("`asc` or `desc` after `{field}:`"),
                direction,
            ))
        }
    };
    Ok(SortKey {
        field: field.to_ascii_lowercase(),
        descending,
        offset,
    })
}

fn filter(token: &Token, field: String, text: &str, limits: &Limits) -> Result<Filter, ParseError> {
    let value = match &token.value {
        Value::Text {
            text: value,
            quoted: true,
        } => scalar(value),
        Value::Text {
            text: value,
            quoted: false,
        } if value == "*" && span_condition::attribute_prefix(token.key).is_some() => {
            FilterValue::Exists
        }
        Value::Text {
            text: value,
            quoted: false,
        } => bare_filter_value(value, token, text)?,
        Value::List { items, .. } => FilterValue::List(list_items(items, token, text, limits)?),
    };
    Ok(Filter {
        field,
        negated: token.negated,
        value,
        offset: token.offset,
    })
}

fn scalar(value: &str) -> FilterValue {
    FilterValue::Scalar {
        value: value.to_owned(),
        like: value.contains('%'),
    }
}

/// Longest operators first, so that `>=5` is not read as `>` then `=5`.
const COMPARE_PREFIXES: [(&str, CompareOp); 4] = [
    (">=", CompareOp::Ge),
    ("<=", CompareOp::Le),
    (">", CompareOp::Gt),
    ("<", CompareOp::Lt),
];

/// An unquoted value: a comparison when it starts with an operator, else a scalar. Quoting
/// (`name:">5"`) is how to match such text literally.
fn bare_filter_value(value: &str, token: &Token, text: &str) -> Result<FilterValue, ParseError> {
    let Some((symbol, op)) = COMPARE_PREFIXES
        .iter()
        .find(|(symbol, _)| value.starts_with(symbol))
    else {
        return Ok(scalar(value));
    };
    let operand = &value[symbol.len()..];
    if operand.is_empty() {
        let offset = token.value_offset + symbol.len();
        return Err(ParseError::expected(
            offset,
            &format!("a number after `{symbol}`"),
            found_at(text, offset),
        ));
    }
    Ok(FilterValue::Compare {
        op: *op,
        value: operand.to_owned(),
    })
}

fn list_items(
    items: &[Item],
    token: &Token,
    text: &str,
    limits: &Limits,
) -> Result<Vec<String>, ParseError> {
    if items.is_empty() {
        return Err(ParseError::expected(
            token.value_offset,
            &format!("at least one item in the list for `{}`", token.key),
            token.raw_value,
        ));
    }
    if items.len() > limits.max_list_items {
        return Err(ParseError::new(
            token.value_offset,
            token.raw_value,
            format!(
                "list for `{}` has {} items, more than the limit of {}",
                token.key,
                items.len(),
                limits.max_list_items
            ),
        ));
    }
    items
        .iter()
        .map(|item| {
            if item.text.is_empty() && !item.quoted {
                return Err(ParseError::expected(
                    item.offset,
                    "a list item",
                    found_at(text, item.offset),
                ));
            }
            Ok(item.text.clone())
        })
        .collect()
}
