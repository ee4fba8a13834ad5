//! `srql_lang::parse` must never panic, whatever the bytes, and an accepted query must
//! respect the limits it was parsed under.

#![no_main]

use libfuzzer_sys::fuzz_target;
use srql_lang::{parse, FilterValue, Limits};

fuzz_target!(|data: &[u8]| {
    // Small limits reach the limit checks with short inputs; the defaults are what the
    // server runs with.
    let small = Limits {
        max_query_len: 256,
        max_list_items: 3,
        max_stats: 2,
        max_span_conditions: 2,
        max_attribute_key_len: 8,
    };
    let lossy = String::from_utf8_lossy(data);
    if let Ok(text) = std::str::from_utf8(data) {
        check(text, &Limits::default());
    }
    check(&lossy, &Limits::default());
    check(&lossy, &small);
});

fn check(text: &str, limits: &Limits) {
    let query = match parse(text, limits) {
        Ok(query) => query,
        Err(err) => {
            assert!(err.offset() <= text.len(), "offset past the end: {err}");
            return;
        }
    };
    for filter in &query.filters {
        if let FilterValue::List(items) = &filter.value {
            assert!(!items.is_empty(), "empty list accepted for {text:?}");
            assert!(
                items.len() <= limits.max_list_items,
                "list of {} items accepted for {text:?}",
                items.len()
            );
        }
    }
    let stats = query.stats.as_ref().map_or(0, |s| s.exprs.len());
    assert!(stats <= limits.max_stats, "{stats} stats accepted");
    assert!(
        text.len() <= limits.max_query_len,
        "over-long query accepted"
    );
}
