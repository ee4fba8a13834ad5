//! The generator writes JSON object keys in jsonb's storage order (shorter keys first,
//! then bytewise), so PostgreSQL's key sort on input has nothing to do.

use chrono::{DateTime, Duration};
use workload::{Generator, WorkloadConfig};

/// The order jsonb keeps object keys in.
fn jsonb_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// Every object's keys in `json`, object by object, in the order written. A small scanner
/// rather than a parser: serde_json's maps do not keep the order.
fn keys_per_object(json: &str) -> Vec<Vec<String>> {
    let mut done = Vec::new();
    // Keys of the objects and arrays open at this point (arrays hold none).
    let mut open: Vec<Option<Vec<String>>> = Vec::new();
    let mut chars = json.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' => open.push(Some(Vec::new())),
            '[' => open.push(None),
            '}' | ']' => done.extend(open.pop().flatten()),
            '"' => {
                let mut text = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => text.extend(chars.next()),
                        '"' => break,
                        c => text.push(c),
                    }
                }
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                if chars.peek() == Some(&':') {
                    if let Some(Some(keys)) = open.last_mut() {
                        keys.push(text);
                    }
                }
            }
            _ => {}
        }
    }
    assert!(open.is_empty(), "unbalanced: {json}");
    done
}

#[test]
fn the_scanner_sees_nested_keys_and_skips_string_values() {
    let keys = keys_per_object(r#"[{"b":"x:\"{","a":{"k":1}},{"c":[1,{"d":2}]}]"#);
    assert_eq!(
        keys,
        vec![
            vec!["k".to_string()],
            vec!["b".into(), "a".into()],
            vec!["d".into()],
            vec!["c".into()],
        ]
    );
}

#[test]
fn every_object_is_written_in_jsonb_key_order() {
    let end = DateTime::from_timestamp(1_717_200_000, 0).expect("valid time");
    let config = WorkloadConfig::for_spans(11, 50_000, end - Duration::days(1), end);
    let mut objects = 0;
    for trace in Generator::new(config) {
        for span in &trace.spans {
            for json in [
                &span.attributes,
                &span.resource.attributes,
                &span.events,
                &span.links,
            ] {
                for keys in keys_per_object(json) {
                    objects += 1;
                    assert!(
                        keys.windows(2).all(|w| jsonb_order(&w[0], &w[1]).is_lt()),
                        "keys out of jsonb order in {json}"
                    );
                }
            }
        }
    }
    assert!(objects > 100_000, "{objects}");
}
