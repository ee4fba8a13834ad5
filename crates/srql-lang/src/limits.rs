//! How much one query may ask for; shared by the parser and the `stats:` reader.

/// Bounds on what one query may ask for, so that a hostile query costs little to reject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest query text accepted, in bytes.
    pub max_query_len: usize,
    /// Most items in one `FIELD:(a,b,...)` list.
    pub max_list_items: usize,
    /// Most `EXPR as alias` expressions over all `stats:` tokens.
    pub max_stats: usize,
    /// Most conditions on spans (`span.…`, `attributes.…`, `resource.…` filters) in one
    /// query: each becomes a test inside a span lookup.
    pub max_span_conditions: usize,
    /// Longest attribute key after `attributes.` / `resource.`, in bytes.
    pub max_attribute_key_len: usize,
}

impl Default for Limits {
    /// 8192 bytes rather than 4096: a full list of 200 quoted trace ids alone is about 7 kB,
    /// and the length limit should not make the list limit unreachable.
    fn default() -> Self {
        Self {
            max_query_len: 8192,
            max_list_items: 200,
            max_stats: 25,
            max_span_conditions: 16,
            max_attribute_key_len: 256,
        }
    }
}
