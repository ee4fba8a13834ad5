//! `time:` / `timeframe:` values.
//!
//! Relative forms are kept relative ([`TimeSpec::Last`], `Today`, `Yesterday`) because only
//! the planner knows "now"; for the same reason an open absolute range cannot be checked
//! against the 90-day bound here, and the planner must do it.

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::ast::TimeSpec;
use crate::error::ParseError;
use crate::lexer::{text_value, Item, Token, Value};

/// The longest time range a query may cover.
const MAX_RANGE_SECS: i64 = 90 * 86_400;

const TIME_FORMS: &str =
    "a time such as `last_24h`, `7d`, `last-7-days`, `today`, `yesterday` or `[START,END]`";

pub(crate) fn time_spec(token: &Token) -> Result<TimeSpec, ParseError> {
    match &token.value {
        Value::List { open: b'[', items } => range(items, token),
        Value::List { .. } | Value::Text { .. } => {
            let value = text_value(token, TIME_FORMS)?;
            relative(&value.trim().to_ascii_lowercase(), token)
        }
    }
}

fn relative(value: &str, token: &Token) -> Result<TimeSpec, ParseError> {
    let fail = |expected: &str| {
        Err(ParseError::expected(
            token.value_offset,
            expected,
            token.raw_value,
        ))
    };
    match value {
        "today" => return Ok(TimeSpec::Today),
        "yesterday" => return Ok(TimeSpec::Yesterday),
        _ => {}
    }
    let Some((count, unit_secs)) = period(value) else {
        return fail(TIME_FORMS);
    };
    // Digits only, so a failed parse is an overflow: certainly more than 90 days.
    let count = count.parse::<i64>().ok();
    match count.and_then(|n| n.checked_mul(unit_secs)) {
        Some(0) => fail("a period longer than zero"),
        Some(seconds) if seconds <= MAX_RANGE_SECS => Ok(TimeSpec::Last { seconds }),
        _ => fail("a time range of at most 90 days"),
    }
}

/// Splits `last_7d`, `7d`, `last-7-days`, `7 days`, `last 24 hours`, ... into the digits
/// and the unit's length in seconds. One grammar covers all the spellings SRQL clients
/// send: an optional `last` prefix, digits, an optional separator, a unit.
fn period(value: &str) -> Option<(&str, i64)> {
    let rest = match value.strip_prefix("last") {
        Some(rest) => rest.strip_prefix(['_', '-', ' '])?,
        None => value,
    };
    let digits_end = rest
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(rest.len());
    let (digits, unit) = rest.split_at(digits_end);
    if digits.is_empty() {
        return None;
    }
    let unit = unit
        .strip_prefix(['_', '-', ' '])
        .unwrap_or(unit)
        .trim_start();
    let unit_secs = match unit {
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600,
        "d" | "day" | "days" => 86_400,
        _ => return None,
    };
    Some((digits, unit_secs))
}

/// `[START,END]`: RFC 3339 or `YYYY-MM-DD HH:MM:SS` (UTC) ends, either (not both) empty for an open range.
fn range(items: &[Item], token: &Token) -> Result<TimeSpec, ParseError> {
    let fail = |expected: &str| {
        Err(ParseError::expected(
            token.value_offset,
            expected,
            token.raw_value,
        ))
    };
    let [start, end] = items else {
        return fail("`[START,END]` with two comma-separated ends");
    };
    let (start, end) = (range_end(start)?, range_end(end)?);
    if let (Some(start), Some(end)) = (start, end) {
        if end < start {
            return fail("a range whose end is not before its start");
        }
        if (end - start).num_seconds() > MAX_RANGE_SECS {
            return fail("a time range of at most 90 days");
        }
    }
    if start.is_none() && end.is_none() {
        return fail("a start or an end in the time range");
    }
    Ok(TimeSpec::Range { start, end })
}

fn range_end(item: &Item) -> Result<Option<DateTime<Utc>>, ParseError> {
    let text = item.text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(time.with_timezone(&Utc)));
    }
    // Upstream's reference writes `2025-01-01 00:00:00` (no zone: UTC).
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .map(|time| Some(time.and_utc()))
        .map_err(|_| {
            ParseError::expected(
                item.offset,
                "a timestamp such as `2024-05-01T00:00:00Z` or `2024-05-01 00:00:00` (UTC)",
                item.text.as_str(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::period;

    #[test]
    fn period_accepts_every_documented_spelling() {
        for (text, expected) in [
            ("last_15m", ("15", 60)),
            ("last_24h", ("24", 3_600)),
            ("7d", ("7", 86_400)),
            ("last-7-days", ("7", 86_400)),
            ("last-2-hours", ("2", 3_600)),
            ("last-30-minutes", ("30", 60)),
            ("7 days", ("7", 86_400)),
            ("24 hours", ("24", 3_600)),
        ] {
            assert_eq!(period(text), Some(expected), "{text}");
        }
    }

    #[test]
    fn period_rejects_other_shapes() {
        for text in [
            "last",
            "last_",
            "lastd",
            "d",
            "7",
            "7w",
            "last7d",
            "7 fortnights",
            "é7d",
        ] {
            assert_eq!(period(text), None, "{text}");
        }
    }
}
