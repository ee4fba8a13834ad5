//! What to generate: seed, time range and number of traces.

use chrono::{DateTime, Duration, Utc};

use crate::trace_shape::NO_ROOT_SHARE;

/// Expected spans per trace as emitted: `E[1 + min(39, floor(Exp(mean 7)))]` = 7.4871,
/// less the 0.5% of traces whose root is dropped. Exact, not measured.
pub const MEAN_SPANS_PER_TRACE: f64 = 7.487_122_666_887_315 - NO_ROOT_SHARE;

/// The default time range of a workload (docs/workload.md).
pub const DEFAULT_RANGE: Duration = Duration::days(7);

/// The scale points of docs/workload.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// 100k spans.
    S,
    /// 1M spans.
    M,
    /// 10M spans (about 1.34M traces).
    L,
}

impl Scale {
    pub fn spans(self) -> u64 {
        match self {
            Scale::S => 100_000,
            Scale::M => 1_000_000,
            Scale::L => 10_000_000,
        }
    }

    /// `S`, `M` or `L`, as benchmarks label their scale points.
    pub fn name(self) -> &'static str {
        match self {
            Scale::S => "S",
            Scale::M => "M",
            Scale::L => "L",
        }
    }

    /// The inverse of [`Scale::name`], case-insensitive (a command-line value parser).
    pub fn parse(s: &str) -> Result<Scale, String> {
        match s.trim().to_ascii_uppercase().as_str() {
            "S" => Ok(Scale::S),
            "M" => Ok(Scale::M),
            "L" => Ok(Scale::L),
            other => Err(format!("unknown scale `{other}`: expected S, M or L")),
        }
    }
}

/// A workload: `traces` traces spread uniformly over `[start, end)`, fully determined by
/// these four values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadConfig {
    pub seed: u64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub traces: u64,
}

impl WorkloadConfig {
    pub fn new(seed: u64, traces: u64, start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        Self {
            seed,
            start,
            end,
            traces,
        }
    }

    /// A workload of about `spans` spans: the trace count is `spans / MEAN_SPANS_PER_TRACE`
    /// rounded, so the total lands within a fraction of a percent of the target at the
    /// scale points (it is a sum of random span counts, not an exact figure).
    pub fn for_spans(seed: u64, spans: u64, start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        let traces = (spans as f64 / MEAN_SPANS_PER_TRACE).round() as u64;
        Self::new(seed, traces.max(u64::from(spans > 0)), start, end)
    }

    /// A scale point over the default range ending at `end` (usually now).
    pub fn at_scale(seed: u64, scale: Scale, end: DateTime<Utc>) -> Self {
        Self::for_spans(seed, scale.spans(), end - DEFAULT_RANGE, end)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn scales_parse_in_either_case_and_name_round_trips() {
        assert_eq!(Scale::parse("s"), Ok(Scale::S));
        assert_eq!(Scale::parse(" L "), Ok(Scale::L));
        assert!(Scale::parse("XL").is_err());
        for s in [Scale::S, Scale::M, Scale::L] {
            assert_eq!(Scale::parse(s.name()), Ok(s));
        }
    }

    use super::*;

    #[test]
    fn mean_matches_the_closed_form() {
        // E[min(39, G)] with P(G >= k) = q^k is q (1 - q^39) / (1 - q).
        let q = (-1.0f64 / 7.0).exp();
        let mean = 1.0 + q * (1.0 - q.powi(39)) / (1.0 - q) - NO_ROOT_SHARE;
        assert!((mean - MEAN_SPANS_PER_TRACE).abs() < 1e-9, "{mean}");
    }

    #[test]
    fn large_scale_has_about_1_34m_traces() {
        let cfg = WorkloadConfig::at_scale(1, Scale::L, DateTime::UNIX_EPOCH + DEFAULT_RANGE);
        assert!(
            (1_330_000..1_345_000).contains(&cfg.traces),
            "{}",
            cfg.traces
        );
        assert_eq!(
            WorkloadConfig::for_spans(1, 1, cfg.start, cfg.end).traces,
            1
        );
        assert_eq!(
            WorkloadConfig::for_spans(1, 0, cfg.start, cfg.end).traces,
            0
        );
    }
}
