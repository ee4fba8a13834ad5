//! The page a client asks for, apart from the query and the catalog: the planner's third
//! input. Its size is bounded by the limits the service is configured with.

use srql_lang::Query;

use crate::direction::Direction;
use crate::error::CompileError;

/// The page sizes a service allows: what a query without a limit gets, and the most any
/// query gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimits {
    pub default: u32,
    pub max: u32,
    /// The most a page of one trace's spans (`in:traces trace_id:X`, rows) may hold when
    /// asked, if more than `max`. A trace view needs every span of the trace; asking for
    /// them 500 at a time costs one lookup (extent read, planning, index probes) per page,
    /// one after the other, since each waits for the last one's cursor. One trace is a
    /// narrow read, so this bound can be wider than `max` and still caps what one request
    /// makes the service read and send.
    pub one_trace: u32,
}

impl Default for PageLimits {
    fn default() -> Self {
        Self {
            default: 100,
            max: 500,
            one_trace: 5_000,
        }
    }
}

/// The requested page, less transport concerns.
#[derive(Debug, Clone, Default)]
pub struct PageRequest<'a> {
    /// Overrides the query's `limit:`; below 1 is a mistake.
    pub limit: Option<i64>,
    pub cursor: Option<&'a str>,
    /// `None`: the cursor's own direction (`next` without a cursor). Given with a cursor,
    /// it must agree with the cursor's.
    pub direction: Option<Direction>,
    pub limits: PageLimits,
}

impl PageRequest<'_> {
    /// The request's limit, else the query's, else the default; clamped to the maximum
    /// (for a page of one trace's spans, the larger of `max` and `one_trace`).
    /// `limit:0` gives one row, as upstream does.
    pub(crate) fn resolve_limit(
        &self,
        query: &Query,
        one_trace: bool,
    ) -> Result<u32, CompileError> {
        let limit = match (self.limit, query.limit) {
            (Some(n), _) if n < 1 => return Err(CompileError::Limit { found: n }),
            (Some(n), _) => n,
            (None, Some(n)) => i64::from(n.max(1)),
            (None, None) => i64::from(self.limits.default),
        };
        let max = if one_trace {
            self.limits.max.max(self.limits.one_trace)
        } else {
            self.limits.max
        };
        Ok(u32::try_from(limit.min(i64::from(max))).unwrap_or(max))
    }
}
