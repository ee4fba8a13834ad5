//! The generated workload against the figures of docs/workload.md, on ~100k spans.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use workload::{kind, status, Generator, Trace, WorkloadConfig, SERVICES};

/// The seed under test; `WORKLOAD_TEST_SEED` checks others (the bounds hold for any seed
/// with high probability, not only for this one).
fn seed() -> u64 {
    std::env::var("WORKLOAD_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_240_601)
}

fn range() -> (DateTime<Utc>, DateTime<Utc>) {
    let end = DateTime::from_timestamp(1_717_200_000, 0).expect("valid time");
    (end - Duration::days(7), end)
}

fn workload() -> (WorkloadConfig, Vec<Trace>) {
    let (start, end) = range();
    let config = WorkloadConfig::for_spans(seed(), 100_000, start, end);
    (config, Generator::new(config).collect())
}

fn share(count: usize, total: usize) -> f64 {
    count as f64 / total as f64
}

#[test]
fn spans_per_trace() {
    let (_, traces) = workload();
    let counts: Vec<usize> = traces.iter().map(|t| t.spans.len()).collect();
    let total: usize = counts.iter().sum();
    let mean = share(total, counts.len());
    let min = counts.iter().copied().min().unwrap_or(0);
    let max = counts.iter().copied().max().unwrap_or(0);
    println!(
        "traces {} spans {total} mean {mean:.3} min {min} max {max}",
        counts.len()
    );
    assert!((7.0..=8.0).contains(&mean), "mean spans per trace {mean}");
    assert_eq!(min, 1);
    assert!(max <= 40, "max {max}");
    // 0.5% of traces lose their root, so some 40-span traces show 39; any 39+ will do.
    assert!(max >= 39, "the cap is reached at this size: max {max}");
    assert!((99_000..=101_000).contains(&total), "total spans {total}");
}

#[test]
fn roots_and_parents() {
    let (_, traces) = workload();
    let mut without_root = 0;
    for trace in &traces {
        let roots = trace.spans.iter().filter(|s| s.is_root()).count();
        match roots {
            0 => without_root += 1,
            1 => {}
            n => panic!("trace {:?} has {n} roots", trace.trace_id()),
        }
        let ids: HashSet<&str> = trace.spans.iter().map(|s| s.span_id.as_str()).collect();
        assert_eq!(
            ids.len(),
            trace.spans.len(),
            "span ids unique within a trace"
        );
        let mut seen: HashSet<&str> = HashSet::new();
        let mut missing_parents: HashSet<&str> = HashSet::new();
        for span in &trace.spans {
            assert_eq!(Some(span.trace_id.as_str()), trace.trace_id());
            if !span.is_root() {
                // Parents come first; the only parent allowed to be absent is the dropped
                // root, and then it is one and the same id for all its orphans.
                if !seen.contains(span.parent_span_id.as_str()) {
                    assert_eq!(roots, 0, "parent of a span is missing or later");
                    missing_parents.insert(span.parent_span_id.as_str());
                }
            }
            seen.insert(span.span_id.as_str());
        }
        assert!(missing_parents.len() <= 1, "only the root may be missing");
        if roots == 0 {
            assert_eq!(
                missing_parents.len(),
                1,
                "orphans point at the dropped root"
            );
        }
    }
    let no_root = share(without_root, traces.len());
    println!(
        "traces without root {without_root} ({:.3}%)",
        no_root * 100.0
    );
    assert!(
        (0.003..=0.008).contains(&no_root),
        "no-root share {no_root}"
    );
}

#[test]
fn services_routes_and_names() {
    let (_, traces) = workload();
    let valid: HashSet<&str> = SERVICES.iter().copied().collect();
    let mut per_trace = Vec::new();
    let mut root_names = HashSet::new();
    let mut kinds: HashMap<i32, usize> = HashMap::new();
    for trace in &traces {
        let services: HashSet<&str> = trace
            .spans
            .iter()
            .map(|s| s.resource.service_name.as_deref().expect("a service"))
            .collect();
        assert!(services.iter().all(|s| valid.contains(s)), "{services:?}");
        assert!(
            (1..=6).contains(&services.len()),
            "{} services",
            services.len()
        );
        per_trace.push(services.len());
        for span in &trace.spans {
            *kinds.entry(span.kind).or_default() += 1;
            if span.is_root() {
                assert_eq!(span.kind, kind::SERVER);
                let (method, path) = span.name.split_once(' ').expect("METHOD /path");
                assert!(["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method));
                assert!(path.starts_with('/'));
                root_names.insert(span.name.clone());
            } else {
                assert!(
                    !span.name.starts_with('/') && !span.name.contains(' '),
                    "{}",
                    span.name
                );
            }
        }
    }
    println!(
        "mean services per trace {:.2}, distinct root names {}, kinds {kinds:?}",
        share(per_trace.iter().sum(), per_trace.len()),
        root_names.len()
    );
    assert_eq!(root_names.len(), 50);
    assert!(kinds.keys().all(|k| (0..=5).contains(k)));
    assert_eq!(kinds.len(), 6, "every SpanKind occurs");
}

#[test]
fn error_traces_and_statuses() {
    let (_, traces) = workload();
    let mut error_traces = 0;
    let (mut ok, mut unset, mut error) = (0usize, 0usize, 0usize);
    for trace in &traces {
        if trace.spans.iter().any(|s| s.status_code == status::ERROR) {
            error_traces += 1;
        }
        for span in &trace.spans {
            match span.status_code {
                status::OK => ok += 1,
                status::UNSET => unset += 1,
                status::ERROR => {
                    error += 1;
                    assert!(!span.status_message.is_empty());
                    assert!(span.events.contains("exception"));
                }
                other => panic!("status {other}"),
            }
            if span.status_code != status::ERROR {
                assert!(span.status_message.is_empty());
            }
        }
    }
    let error_share = share(error_traces, traces.len());
    let ok_share = share(ok, ok + unset);
    println!(
        "error traces {:.2}%, error spans {error}, OK among non-error spans {:.1}%",
        error_share * 100.0,
        ok_share * 100.0
    );
    assert!(
        (0.04..=0.06).contains(&error_share),
        "error trace share {error_share}"
    );
    assert!((0.67..=0.73).contains(&ok_share), "OK share {ok_share}");
}

#[test]
fn late_arrivals() {
    let (_, traces) = workload();
    let delays: Vec<i64> = traces
        .iter()
        .flat_map(|t| &t.spans)
        .map(|s| s.arrival_delay_ms)
        .collect();
    let late: Vec<i64> = delays.iter().copied().filter(|&d| d != 0).collect();
    let late_share = share(late.len(), delays.len());
    let max = late.iter().copied().max().unwrap_or(0);
    let mean = late.iter().sum::<i64>() as f64 / late.len() as f64;
    println!(
        "late spans {} ({:.3}%), max delay {max} ms, mean delay {mean:.0} ms",
        late.len(),
        late_share * 100.0
    );
    assert!(delays.iter().all(|&d| d >= 0));
    assert!(
        (0.007..=0.013).contains(&late_share),
        "late share {late_share}"
    );
    assert!(max <= 600_000, "max delay {max}");
    // Uniform over (0, 10 min]: the mean sits near 5 minutes.
    assert!((240_000.0..=360_000.0).contains(&mean), "mean delay {mean}");
}

#[test]
fn durations_and_times() {
    let (config, traces) = workload();
    let mut durations: Vec<i64> = Vec::new();
    let start_ns = config.start.timestamp_nanos_opt().expect("in range");
    let end_ns = config.end.timestamp_nanos_opt().expect("in range");
    let few_seconds = 5_000_000_000;
    let mut nested = 0usize;
    let mut children = 0usize;
    let mut first_starts = Vec::new();
    for trace in &traces {
        let by_id: HashMap<&str, (i64, i64)> = trace
            .spans
            .iter()
            .map(|s| {
                (
                    s.span_id.as_str(),
                    (s.start_time_unix_nano, s.end_time_unix_nano),
                )
            })
            .collect();
        let first = trace
            .spans
            .iter()
            .map(|s| s.start_time_unix_nano)
            .min()
            .expect("non-empty");
        first_starts.push(first);
        for span in &trace.spans {
            let d = span.duration_nanos();
            assert!(d > 0 && d <= 30_000_000_000, "duration {d}");
            durations.push(d);
            assert_eq!(
                span.timestamp.timestamp_nanos_opt(),
                Some(span.start_time_unix_nano)
            );
            assert!(span.start_time_unix_nano >= start_ns);
            assert!(span.start_time_unix_nano <= end_ns + few_seconds);
            assert!(span.start_time_unix_nano - first <= few_seconds);
            if let Some(&(ps, pe)) = by_id.get(span.parent_span_id.as_str()) {
                children += 1;
                if ps <= span.start_time_unix_nano && span.end_time_unix_nano <= pe {
                    nested += 1;
                }
            }
        }
    }
    durations.sort_unstable();
    let median_ms = durations[durations.len() / 2] as f64 / 1e6;
    let p99_ms = durations[durations.len() * 99 / 100] as f64 / 1e6;
    let max_ms = durations[durations.len() - 1] as f64 / 1e6;
    println!(
        "duration median {median_ms:.2} ms, p99 {p99_ms:.0} ms, max {max_ms:.0} ms; \
         children nested in parent {:.1}%",
        share(nested, children) * 100.0
    );
    assert!((15.0..=27.0).contains(&median_ms), "median {median_ms} ms");
    assert!(max_ms >= 1_000.0, "a tail to seconds: max {max_ms} ms");

    // Uniform cover of the range: each tenth of it holds about a tenth of the traces.
    let width = (end_ns - start_ns) / 10;
    let mut buckets = [0usize; 10];
    for s in &first_starts {
        buckets[(((s - start_ns) / width) as usize).min(9)] += 1;
    }
    let expected = first_starts.len() / 10;
    println!("traces per tenth of the range {buckets:?}");
    for b in buckets {
        assert!(b.abs_diff(expected) <= expected / 50 + 2, "{buckets:?}");
    }
}

#[test]
fn attributes_are_realistic_json() {
    let (_, traces) = workload();
    let mut bytes = 0usize;
    let mut spans = 0usize;
    let (mut min, mut max) = (usize::MAX, 0usize);
    for span in traces.iter().flat_map(|t| &t.spans) {
        let attributes: serde_json::Value =
            serde_json::from_str(&span.attributes).expect("attributes are JSON");
        let resource: serde_json::Value =
            serde_json::from_str(&span.resource.attributes).expect("resource attributes are JSON");
        let events: serde_json::Value =
            serde_json::from_str(&span.events).expect("events are JSON");
        let links: serde_json::Value = serde_json::from_str(&span.links).expect("links are JSON");
        assert!(attributes.is_object() && resource.is_object());
        assert!(events.is_array() && links.is_array());
        let r = &span.resource;
        assert_eq!(resource["service.name"].as_str(), r.service_name.as_deref());
        assert_eq!(
            resource["service.version"].as_str(),
            r.service_version.as_deref()
        );
        assert_eq!(
            resource["k8s.pod.name"].as_str(),
            r.service_instance.as_deref()
        );
        if span.is_root() {
            let route = span.name.split_once(' ').map(|(_, r)| r);
            assert_eq!(attributes["http.route"].as_str(), route);
            assert!(attributes["http.status_code"].is_i64());
        }
        let size = span.attributes.len() + span.resource.attributes.len();
        bytes += size;
        spans += 1;
        min = min.min(size);
        max = max.max(size);
    }
    let mean = share(bytes, spans);
    println!("attribute bytes per span: mean {mean:.0}, min {min}, max {max}");
    assert!(
        (200.0..=400.0).contains(&mean),
        "mean attribute bytes {mean}"
    );
}

#[test]
fn identifiers() {
    let (_, traces) = workload();
    let is_hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let mut trace_ids = HashSet::new();
    for trace in &traces {
        let id = trace.trace_id().expect("non-empty trace");
        assert!(is_hex(id, 32), "{id}");
        assert!(trace_ids.insert(id.to_owned()), "duplicate trace id {id}");
        for span in &trace.spans {
            assert!(is_hex(&span.span_id, 16));
            assert!(span.parent_span_id.is_empty() || is_hex(&span.parent_span_id, 16));
        }
    }
}
