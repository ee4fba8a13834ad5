//! The traces tab's queries (docs/srql.md), the workload the summaries exist for.

/// One measured query.
#[derive(Debug, Clone, Copy)]
pub struct TabQuery {
    /// Stable key in the JSON results.
    pub name: &'static str,
    /// What a reader of the report sees.
    pub title: &'static str,
    pub srql: &'static str,
    /// The page that is timed: 1, or a deeper page reached by following `next_cursor`.
    pub page: u32,
}

impl TabQuery {
    pub fn is_first_page(&self) -> bool {
        self.page == 1
    }
}

/// The query the last-24-hours target is about.
pub const LAST_24H: &str = "last_24h";

pub const QUERIES: &[TabQuery] = &[
    TabQuery {
        name: "ui_open",
        title: "UI opens (no time filter, limit 20)",
        srql: "in:otel_trace_summaries sort:timestamp:desc limit:20",
        page: 1,
    },
    TabQuery {
        name: "last_1h",
        title: "last 1 h",
        srql: "in:otel_trace_summaries time:last_1h sort:timestamp:desc limit:100",
        page: 1,
    },
    TabQuery {
        name: LAST_24H,
        title: "last 24 h",
        srql: "in:otel_trace_summaries time:last_24h sort:timestamp:desc limit:100",
        page: 1,
    },
    TabQuery {
        name: "last_7d",
        title: "last 7 d",
        srql: "in:otel_trace_summaries time:last_7d sort:timestamp:desc limit:100",
        page: 1,
    },
    TabQuery {
        name: "root_service",
        title: "24 h, root_service_name:svc-3",
        srql: "in:otel_trace_summaries time:last_24h root_service_name:svc-3 sort:timestamp:desc limit:100",
        page: 1,
    },
    TabQuery {
        name: "service",
        title: "24 h, service_name:svc-3",
        srql: "in:otel_trace_summaries time:last_24h service_name:svc-3 sort:timestamp:desc limit:100",
        page: 1,
    },
    TabQuery {
        name: "slowest",
        title: "24 h, sort:duration_ms:desc",
        srql: "in:otel_trace_summaries time:last_24h sort:duration_ms:desc limit:100",
        page: 1,
    },
    TabQuery {
        name: "errors",
        title: "24 h, error_count:>0",
        srql: "in:otel_trace_summaries time:last_24h error_count:>0 sort:timestamp:desc limit:100",
        page: 1,
    },
    TabQuery {
        name: "page_100",
        title: "UI opens, page 100 (cursor)",
        srql: "in:otel_trace_summaries sort:timestamp:desc limit:20",
        page: 100,
    },
    TabQuery {
        name: "service_list",
        title: "24 h, traces per root service (stats by)",
        srql: "in:otel_trace_summaries time:last_24h stats:\"count() as traces by root_service_name\"",
        page: 1,
    },
    TabQuery {
        name: "span_attr_rare",
        title: "24 h, a span with http.status_code 401 (~0.1% of spans)",
        srql: "in:otel_trace_summaries time:last_24h span.attributes.http.status_code:401 limit:20",
        page: 1,
    },
    TabQuery {
        name: "span_attr_common",
        title: "24 h, a span with http.status_code 200 (~15% of spans)",
        srql: "in:otel_trace_summaries time:last_24h span.attributes.http.status_code:200 limit:20",
        page: 1,
    },
    TabQuery {
        name: "span_operation",
        title: "24 h, a non-root operation (span.name:compute.price)",
        srql: "in:otel_trace_summaries time:last_24h span.name:compute.price limit:20",
        page: 1,
    },
    TabQuery {
        name: "span_service_slow",
        title: "24 h, a svc-3 span slower than 1 s",
        srql: "in:otel_trace_summaries time:last_24h span.service_name:svc-3 span.duration_ms:>1000 limit:20",
        page: 1,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_and_have_unique_names() {
        let mut names = std::collections::HashSet::new();
        for q in QUERIES {
            assert!(names.insert(q.name), "duplicate name {}", q.name);
            srql_lang::parse(q.srql, &srql_lang::Limits::default())
                .unwrap_or_else(|e| panic!("{}: {e}", q.name));
        }
        assert!(names.contains(LAST_24H));
    }
}
