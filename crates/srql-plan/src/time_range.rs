//! Resolving `time:` against "now" into inclusive bounds.

use chrono::{DateTime, Duration, NaiveTime, Utc};
use srql_lang::TimeSpec;

/// The longest range a query may ask for.
pub const MAX_RANGE_DAYS: i64 = 90;

/// Inclusive bounds on the row timestamp; `None` is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeRange {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

/// The range, or why it is refused (the caller knows where `time:` was written).
pub fn resolve(spec: Option<&TimeSpec>, now: DateTime<Utc>) -> Result<TimeRange, String> {
    let midnight = now.date_naive().and_time(NaiveTime::MIN).and_utc();
    let range = match spec {
        None => TimeRange::default(),
        Some(TimeSpec::Last { seconds }) => TimeRange {
            start: Some(now - Duration::seconds(*seconds)),
            end: Some(now),
        },
        Some(TimeSpec::Today) => TimeRange {
            start: Some(midnight),
            end: Some(now),
        },
        Some(TimeSpec::Yesterday) => TimeRange {
            start: Some(midnight - Duration::days(1)),
            // Inclusive end: the last microsecond of yesterday.
            end: Some(midnight - Duration::microseconds(1)),
        },
        Some(TimeSpec::Range { start, end }) => TimeRange {
            start: *start,
            end: *end,
        },
    };
    if let (Some(s), Some(e)) = (range.start, range.end) {
        if e < s {
            return Err(format!(
                "time range ends before it starts: {} > {}",
                fmt(s),
                fmt(e)
            ));
        }
    }
    if let Some(s) = range.start {
        let e = range.end.unwrap_or(now);
        if e - s > Duration::days(MAX_RANGE_DAYS) {
            return Err(format!(
                "time range from {} to {} is longer than {MAX_RANGE_DAYS} days",
                fmt(s),
                fmt(e)
            ));
        }
    }
    Ok(range)
}

fn fmt(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}
