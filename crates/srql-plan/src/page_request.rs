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
}

impl Default for PageLimits {
    fn default() -> Self {
        Self {
            default: 100,
            max: 500,
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
    /// The request's limit, else the query's, else the default; clamped to the maximum.
    /// `limit:0` gives one row, as upstream does.
    pub(crate) fn resolve_limit(&self, query: &Query) -> Result<u32, CompileError> {
        let limit = match (self.limit, query.limit) {
            (Some(n), _) if n < 1 => return Err(CompileError::Limit { found: n }),
            (Some(n), _) => n,
            (None, Some(n)) => i64::from(n.max(1)),
            (None, None) => i64::from(self.limits.default),
        };
        let max = self.limits.max;
        Ok(u32::try_from(limit.min(i64::from(max))).unwrap_or(max))
    }
}
