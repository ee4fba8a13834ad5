//! Corpus snapshots and no-panic properties for `srql_lang::parse`.
//!
//! The corpus is the repository's one query corpus, `tests/queries` (see its README): every
//! `ok` query (`tests/queries/*.srql`) must parse, and its parse tree is snapshotted. An
//! `err` query (`tests/queries/err/*.srql`) fails at parsing or, if it is well formed, at
//! planning; the parse errors are snapshotted here, every error in `srql-plan`'s corpus test.

use std::fs;
use std::path::Path;

use srql_lang::{parse, FilterValue, Limits, ParseError, Query};

/// One query per file; a single trailing newline (editors add one) is not part of it.
fn read_query(path: &Path) -> String {
    let text = fs::read_to_string(path).expect("corpus files are UTF-8");
    match text.strip_suffix('\n') {
        Some(stripped) if !stripped.trim().is_empty() => stripped.to_owned(),
        _ => text,
    }
}

#[test]
fn corpus_ok() {
    insta::glob!("../../../tests/queries", "*.srql", |path| {
        let text = read_query(path);
        let query = parse(&text, &Limits::default())
            .unwrap_or_else(|err| panic!("{} should parse: {err}", path.display()));
        insta::assert_debug_snapshot!(query);
    });
}

#[test]
fn corpus_err() {
    let mut parse_errors = 0;
    insta::glob!("../../../tests/queries/err", "*.srql", |path| {
        let text = read_query(path);
        // A well-formed query here is a planning error, which `srql-plan` snapshots.
        let Err(err) = parse(&text, &Limits::default()) else {
            return;
        };
        parse_errors += 1;
        assert!(err.offset() <= text.len());
        insta::assert_snapshot!(err.to_string());
    });
    assert!(
        parse_errors >= 100,
        "only {parse_errors} parse errors in the corpus"
    );
}

fn error_of(text: &str, limits: &Limits) -> ParseError {
    match parse(text, limits) {
        Ok(query) => panic!("{text:?} should fail, parsed as {query:#?}"),
        Err(err) => err,
    }
}

#[test]
fn nul_byte_is_rejected_even_inside_quotes() {
    let err = error_of("service_name:\"a\0b\"", &Limits::default());
    assert_eq!(err.offset(), 15);
    assert_eq!(err.token(), "\0");
    insta::assert_snapshot!(err.to_string(), @"at position 15: expected printable text, found a NUL byte");
}

#[test]
fn ten_kilobyte_query_is_rejected_by_length() {
    let text = format!("root_span_name:{}", "a".repeat(10 * 1024));
    let err = error_of(&text, &Limits::default());
    insta::assert_snapshot!(err.to_string(), @"at position 8192: query is 10255 bytes long, more than the limit of 8192 bytes");
}

#[test]
fn limits_are_configurable() {
    let limits = Limits {
        max_query_len: 40,
        max_list_items: 2,
        max_stats: 1,
        ..Limits::default()
    };
    insta::assert_snapshot!(
        error_of("service_name:(a,b,c)", &limits).to_string(),
        @"at position 13: list for `service_name` has 3 items, more than the limit of 2"
    );
    insta::assert_snapshot!(
        error_of("stats:\"count() as a, count() as b\"", &limits).to_string(),
        @"at position 21: `stats` has more expressions than the limit of 1"
    );
    insta::assert_snapshot!(
        error_of(&"a:b ".repeat(11), &limits).to_string(),
        @"at position 40: query is 44 bytes long, more than the limit of 40 bytes"
    );
    assert!(parse("service_name:(a,b)", &limits).is_ok());
}

#[test]
fn error_exposes_offset_token_and_message() {
    let err = error_of("in:traces limit:abc", &Limits::default());
    assert_eq!(err.offset(), 16);
    assert_eq!(err.token(), "abc");
    assert_eq!(
        err.message(),
        "expected a non-negative integer after `limit:`, found `abc`"
    );
}

#[test]
fn long_found_text_is_shortened_in_messages() {
    let text = format!("in:{}", "x".repeat(1000));
    let message = error_of(&text, &Limits::default()).to_string();
    assert!(message.len() < 250, "{message}");
    assert!(message.ends_with("…`"), "{message}");
}

/// xorshift64*: enough randomness to shake the parser, and no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Pieces that reach deep into the grammar, so random input is not all rejected at the
/// first byte.
const FRAGMENTS: [&str; 44] = [
    "span.attributes.",
    "span.name:",
    "resource.",
    ":*",
    "in:",
    "time:",
    "timeframe:",
    "sort:",
    "order:",
    "limit:",
    "stats:",
    "rollup_stats:",
    "!",
    "service_name:",
    "service.name:",
    ":",
    " ",
    "\t",
    "\n",
    "\"",
    "'",
    "\\",
    "(",
    ")",
    "[",
    "]",
    ",",
    "%",
    ">",
    ">=",
    "<",
    "<=",
    "=",
    "!=",
    "last_",
    "-days",
    "7",
    "d",
    "count()",
    " as ",
    "sum(if(",
    "2024-05-01T00:00:00Z",
    "é",
    "🚀",
];

fn random_text(rng: &mut Rng) -> String {
    let mut bytes = Vec::new();
    for _ in 0..rng.below(40) {
        if rng.below(4) == 0 {
            // Raw bytes, including invalid UTF-8 and control characters.
            bytes.push(rng.next() as u8);
        } else {
            bytes.extend_from_slice(FRAGMENTS[rng.below(FRAGMENTS.len())].as_bytes());
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// What must hold for every input, accepted or not.
fn check_invariants(text: &str, limits: &Limits) {
    match parse(text, limits) {
        Ok(query) => check_query(&query, limits),
        Err(err) => {
            assert!(err.offset() <= text.len(), "{text:?}: {err}");
            assert!(!err.message().ends_with('.'), "{err}");
        }
    }
}

fn check_query(query: &Query, limits: &Limits) {
    for filter in &query.filters {
        if let FilterValue::List(items) = &filter.value {
            assert!(!items.is_empty() && items.len() <= limits.max_list_items);
        }
    }
    let stats = query.stats.as_ref().map_or(0, |s| s.exprs.len());
    let keys = query.stats.as_ref().map_or(0, |s| s.by.len());
    assert!(keys <= 2);
    assert!(stats <= limits.max_stats);
    let on_spans = query
        .filters
        .iter()
        .filter(|f| {
            let f = f.field.to_ascii_lowercase();
            ["span.", "attributes.", "resource."]
                .iter()
                .any(|p| f.starts_with(p))
        })
        .count();
    assert!(on_spans <= limits.max_span_conditions);
}

#[test]
fn random_input_never_panics() {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let small = Limits {
        max_query_len: 200,
        max_list_items: 3,
        max_stats: 2,
        max_span_conditions: 2,
        max_attribute_key_len: 8,
    };
    for _ in 0..30_000 {
        let text = random_text(&mut rng);
        check_invariants(&text, &Limits::default());
        check_invariants(&text, &small);
    }
}

/// Mutating valid queries explores the neighbourhood of the grammar that random text
/// rarely reaches.
#[test]
fn mutated_corpus_never_panics() {
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/queries");
    let queries: Vec<String> = fs::read_dir(dir)
        .expect("corpus directory exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "srql"))
        .map(|path| read_query(&path))
        .collect();
    for query in &queries {
        for _ in 0..200 {
            let mut bytes = query.clone().into_bytes();
            for _ in 0..=rng.below(3) {
                mutate(&mut bytes, &mut rng);
            }
            check_invariants(&String::from_utf8_lossy(&bytes), &Limits::default());
        }
    }
}

fn mutate(bytes: &mut Vec<u8>, rng: &mut Rng) {
    let at = rng.below(bytes.len() + 1);
    let fragment = FRAGMENTS[rng.below(FRAGMENTS.len())].as_bytes();
    match rng.below(4) {
        0 if at < bytes.len() => {
            bytes.remove(at);
        }
        1 if at < bytes.len() => bytes[at] = rng.next() as u8,
        2 => bytes.truncate(at),
        _ => {
            bytes.splice(at..at, fragment.iter().copied());
        }
    }
}

#[test]
fn attribute_keys_keep_their_case_and_prefixes_do_not() {
    let q = parse(
        "in:traces SPAN.Attributes.HTTP.Route:/a !resource.K8s.Pod:* Span.Name:X",
        &Limits::default(),
    )
    .expect("parses");
    let fields: Vec<&str> = q.filters.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "span.attributes.HTTP.Route",
            "resource.K8s.Pod",
            "span.name"
        ]
    );
    assert_eq!(q.filters[1].value, FilterValue::Exists);
    assert!(q.filters[1].negated);
}

#[test]
fn star_means_exists_only_bare_and_only_on_attribute_keys() {
    let q = parse(
        "in:traces attributes.a:\"*\" name:* span.attributes.b:*",
        &Limits::default(),
    )
    .expect("parses");
    assert!(matches!(&q.filters[0].value, FilterValue::Scalar { value, .. } if value == "*"));
    assert!(matches!(&q.filters[1].value, FilterValue::Scalar { value, .. } if value == "*"));
    assert_eq!(q.filters[2].value, FilterValue::Exists);
}

#[test]
fn span_conditions_and_attribute_keys_are_bounded() {
    let limits = Limits {
        max_span_conditions: 2,
        max_attribute_key_len: 4,
        ..Limits::default()
    };
    insta::assert_snapshot!(
        error_of("span.name:a span.kind:2 !span.status_code:2", &limits).to_string(),
        @"at position 24: more conditions on spans than the limit of 2"
    );
    insta::assert_snapshot!(
        error_of("in:traces attributes.abcde:1", &limits).to_string(),
        @"at position 21: attribute key is 5 bytes long, more than the limit of 4"
    );
    insta::assert_snapshot!(
        error_of("in:traces !span.attributes.:1", &limits).to_string(),
        @"at position 27: expected an attribute key after `span.attributes.`, found `:`"
    );
}
