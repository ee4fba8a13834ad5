//! What the 64 clients ask: the traces tab's requests, in the proportions a person
//! browsing it makes them (docs/srql.md; the first-page queries of `srql bench`).

/// One kind of request in the mix.
#[derive(Debug, Clone, Copy)]
pub struct QueryKind {
    /// Stable key in the JSON results.
    pub name: &'static str,
    /// What a reader of the report sees.
    pub title: &'static str,
    /// The SRQL text; `{trace_id}` is replaced by a trace id the database holds.
    pub srql: &'static str,
    /// Slots in one round of the mix: how often this request comes up.
    pub weight: usize,
}

/// Replaced in [`QueryKind::srql`] by one of the sampled trace ids.
pub const TRACE_ID: &str = "{trace_id}";

pub const MIX: &[QueryKind] = &[
    QueryKind {
        name: "first_page",
        title: "first page, last 24 h",
        srql: "in:otel_trace_summaries time:last_24h sort:timestamp:desc limit:100",
        weight: 3,
    },
    QueryKind {
        name: "service_filter",
        title: "first page, 24 h, service_name:svc-3",
        srql:
            "in:otel_trace_summaries time:last_24h service_name:svc-3 sort:timestamp:desc limit:100",
        weight: 2,
    },
    QueryKind {
        name: "slowest",
        title: "24 h, sort:duration_ms:desc",
        srql: "in:otel_trace_summaries time:last_24h sort:duration_ms:desc limit:100",
        weight: 1,
    },
    QueryKind {
        name: "trace_lookup",
        title: "one trace by trace_id",
        srql: "in:otel_trace_summaries trace_id:{trace_id}",
        weight: 2,
    },
    QueryKind {
        name: "rollup_stats",
        title: "rollup_stats:summary card, 24 h",
        srql: "in:otel_traces time:last_24h rollup_stats:summary",
        weight: 1,
    },
    QueryKind {
        name: "spans",
        title: "spans, 1 h, service_name:svc-3",
        srql: "in:otel_traces time:last_1h service_name:svc-3 sort:timestamp:desc limit:100",
        weight: 1,
    },
];

/// One round of the mix as indices into [`MIX`], interleaved so each client's sequence
/// spreads the kinds out rather than repeating one in a burst.
pub fn round() -> Vec<usize> {
    let mut slots = Vec::new();
    let most = MIX.iter().map(|k| k.weight).max().unwrap_or(0);
    for pass in 0..most {
        for (i, k) in MIX.iter().enumerate() {
            if pass < k.weight {
                slots.push(i);
            }
        }
    }
    slots
}

/// The SRQL text of `kind`, with `trace_id` substituted where it asks for one.
pub fn srql(kind: &QueryKind, trace_id: &str) -> String {
    kind.srql.replace(TRACE_ID, trace_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_parses_and_names_are_unique() {
        let mut names = std::collections::HashSet::new();
        for k in MIX {
            assert!(names.insert(k.name), "duplicate {}", k.name);
            let text = srql(k, "0123456789abcdef0123456789abcdef");
            assert!(
                !text.contains('{'),
                "{}: placeholder left in `{text}`",
                k.name
            );
            srql_lang::parse(&text, &srql_lang::Limits::default())
                .unwrap_or_else(|e| panic!("{}: {e}", k.name));
        }
    }

    #[test]
    fn a_round_holds_each_kind_by_its_weight() {
        let r = round();
        assert_eq!(r.len(), MIX.iter().map(|k| k.weight).sum::<usize>());
        for (i, k) in MIX.iter().enumerate() {
            assert_eq!(
                r.iter().filter(|&&s| s == i).count(),
                k.weight,
                "{}",
                k.name
            );
        }
        assert_eq!(&r[..MIX.len()], &(0..MIX.len()).collect::<Vec<_>>()[..]);
    }
}
