//! The `srql` binary as a user runs it, on its own embedded cluster.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::ServiceLog;

fn data_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("srql-cli-{tag}-{}", std::process::id()))
}

fn srql(dir: &PathBuf) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_srql"));
    c.env_remove("DATABASE_URL")
        .env("SRQL_DATA_DIR", dir)
        .env("SRQL_LOG", "warn")
        .stdin(Stdio::null());
    c
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run srql");
    assert!(
        out.status.success(),
        "srql failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn migrate_twice_generate_and_query_on_the_embedded_cluster() {
    let dir = data_dir("query");
    let first = run_ok(srql(&dir).arg("migrate"));
    assert!(first.contains("migrations applied: [1, 2, 3"), "{first}");
    let second = run_ok(srql(&dir).arg("migrate"));
    assert!(second.contains("migrations applied: []"), "{second}");
    assert!(second.contains("up to date"), "{second}");

    let gen = run_ok(srql(&dir).args(["generate", "--spans", "20000", "--days", "2"]));
    let loaded: u64 = gen
        .strip_prefix("loaded ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected output: {gen}"));
    assert!((18_000..=22_000).contains(&loaded), "{gen}");
    run_ok(srql(&dir).arg("refresh"));
    let table = run_ok(srql(&dir).args([
        "query",
        "in:otel_trace_summaries time:last_24h sort:duration_ms:desc limit:3",
    ]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("timestamp"), "{table}");
    assert!(lines[1].starts_with("---"), "{table}");
    assert_eq!(lines.last(), Some(&"(3 rows)"), "{table}");

    let json = run_ok(srql(&dir).args(["query", "--json", "in:otel_trace_summaries limit:2"]));
    let v: serde_json::Value = serde_json::from_str(&json).expect("json output");
    assert_eq!(v["results"].as_array().map(Vec::len), Some(2));

    let bad = srql(&dir)
        .args(["query", "in:otel_trace_summaries colour:red"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown field `colour`"));
    assert!(
        !dir.join("postmaster.pid").exists(),
        "every command stops its cluster"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Without `--summary-mode` a database keeps the mode it has, so forgetting the flag
/// never rebuilds its summaries; one without summaries starts in incremental mode.
#[test]
fn without_a_summary_mode_a_database_keeps_its_own() {
    let dir = data_dir("keeps-mode");
    let migrate = |mode: Option<&str>| {
        let mut cmd = srql(&dir);
        cmd.env_remove("SRQL_SUMMARY_MODE");
        if let Some(mode) = mode {
            cmd.args(["--summary-mode", mode]);
        }
        run_ok(cmd.arg("migrate"))
    };
    let summaries = |out: &str| {
        out.split("summaries (")
            .nth(1)
            .map(|rest| rest.split(';').next().unwrap_or_default().to_string())
            .unwrap_or_else(|| panic!("unexpected output: {out}"))
    };
    assert_eq!(summaries(&migrate(None)), "incremental) built");
    assert_eq!(summaries(&migrate(None)), "incremental) up to date");
    assert_eq!(
        summaries(&migrate(Some("materialized_view"))),
        "materialized_view) built"
    );
    assert_eq!(summaries(&migrate(None)), "materialized_view) up to date");
    assert_eq!(
        summaries(&migrate(Some("incremental"))),
        "incremental) built"
    );
    assert_eq!(summaries(&migrate(None)), "incremental) up to date");
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 11: `srql generate` left the summaries stale until the next refresh, so a
/// query right after listed nothing of what it loaded. In both summary modes.
#[test]
fn a_query_right_after_generate_lists_the_new_data() {
    for mode in ["materialized_view", "incremental"] {
        let dir = data_dir(&format!("fresh-{mode}"));
        let mut generate = srql(&dir);
        generate
            .env("SRQL_SUMMARY_MODE", mode)
            .args(["generate", "--spans", "5000", "--days", "1"]);
        let out = run_ok(&mut generate);
        assert!(out.contains("summaries refreshed"), "{out}");
        let table = run_ok(
            srql(&dir)
                .env("SRQL_SUMMARY_MODE", mode)
                .args(["query", "in:otel_trace_summaries time:last_24h limit:3"]),
        );
        assert_eq!(table.lines().last(), Some("(3 rows)"), "{mode}: {table}");
        std::fs::remove_dir_all(&dir).ok();
    }
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn http_post_json(port: u16, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Who is connected to the `srql` database of the cluster in `dir`, asked as the
/// superuser with the password from the cluster's credentials file.
fn session_users(dir: &std::path::Path) -> Vec<String> {
    let creds = store::credentials::Credentials::load(dir).expect("credentials file");
    let url = store::credentials::socket_url(
        dir,
        5432,
        "postgres",
        creds.password("postgres").expect("superuser password"),
        "srql",
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = store::db::connect(&url)
            .await
            .expect("connect as superuser");
        client
            .query(
                "SELECT DISTINCT usename::text FROM pg_stat_activity WHERE datname = 'srql'",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    })
}

#[test]
fn serve_answers_and_ctrl_c_stops_it_and_its_database() {
    let dir = data_dir("serve");
    let mut child = srql(&dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(["--otlp-grpc-listen", "off"])
        .args(["--otlp-http-listen", "127.0.0.1:0"])
        .env("SRQL_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let log = ServiceLog::follow(child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let port = log.port_of("serving SRQL", deadline);
    let otlp_port = log.port_of("OTLP/HTTP receiver listening", deadline);
    let health = http_get(port, "/healthz");
    assert!(
        health.starts_with("HTTP/1.1 200"),
        "{health}\n{}",
        log.text()
    );
    assert!(health.contains("\"database\":\"ok\""), "{health}");
    assert!(dir.join("postmaster.pid").exists());

    // A span over OTLP/HTTP shows in the ingest counters on /metrics.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let export = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"cli-test"}}}}]}},
            "scopeSpans":[{{"spans":[{{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708",
            "name":"GET /","startTimeUnixNano":"{now}","endTimeUnixNano":"{}"}}]}}]}}]}}"#,
        now + 1_000_000
    );
    let accepted = http_post_json(otlp_port, "/v1/traces", &export);
    assert!(accepted.starts_with("HTTP/1.1 200"), "{accepted}");
    let metrics = http_get(port, "/metrics");
    for line in ["srql_ingest_spans_total 1", "srql_ingest_requests_total 1"] {
        assert!(metrics.lines().any(|l| l == line), "{line}: {metrics}");
    }

    // Least privilege: SRQL queries ran as the reader login, ingest and the scheduler
    // as the writer login; neither is a superuser.
    let query = http_post_json(
        port,
        "/api/query",
        r#"{"query": "in:otel_trace_summaries limit:1"}"#,
    );
    assert!(query.starts_with("HTTP/1.1 200"), "{query}");
    let users = session_users(&dir);
    for login in ["srql_reader_login", "srql_writer_login"] {
        assert!(users.iter().any(|u| u == login), "{login}: {users:?}");
    }

    // Ctrl-C is SIGINT.
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit on Ctrl-C: {status:?}");
    assert!(
        !dir.join("postmaster.pid").exists(),
        "the embedded cluster stopped with it"
    );
    let log = log.finish();
    assert!(log.contains("embedded PostgreSQL stopped"), "{log}");
    std::fs::remove_dir_all(&dir).ok();
}

/// `srql bench` measures the summary mode it is given, as PostgreSQL reports it, each
/// mode into files and a BENCHMARKS.md section of its own: the incremental section goes
/// right after the view's and leaves it byte for byte.
#[test]
fn bench_measures_the_summary_mode_it_is_given_each_into_its_own_section() {
    let dir = data_dir("bench-mode");
    let out = data_dir("bench-mode-out");
    std::fs::create_dir_all(&out).expect("results dir");
    let md = out.join("BENCHMARKS.md");
    let others = "<!-- otlp:start -->\nanother benchmark's\n<!-- otlp:end -->\n";
    std::fs::write(&md, format!("# Benchmarks\n\n{others}")).expect("markdown");
    // Page 100 of 20 traces needs about 20,000 spans.
    let tiny = |mode: &str| {
        let mut c = srql(&dir);
        c.args(["--summary-mode", mode, "bench", "--spans", "20000"])
            .args(["--summary-runs", "3", "--on-the-fly-runs", "1"])
            .args(["--on-the-fly-target-runs", "1", "--drains", "2"])
            .args(["--drain-spans", "300", "--out-dir"])
            .arg(&out)
            .arg("--markdown")
            .arg(&md);
        c
    };
    let section = |text: &str, name: &str| {
        let (start, end) = (
            format!("<!-- {name}:start -->"),
            format!("<!-- {name}:end -->"),
        );
        let s = text
            .find(&start)
            .unwrap_or_else(|| panic!("no {start}: {text}"));
        let e = text
            .find(&end)
            .unwrap_or_else(|| panic!("no {end}: {text}"))
            + end.len();
        (s, e, text[s..e].to_string())
    };
    let json = |name: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(out.join(name)).expect(name);
        serde_json::from_str(&text).expect("bench JSON")
    };

    let printed = run_ok(&mut tiny("materialized_view"));
    assert!(printed.contains("refresh: plain"), "{printed}");
    let after_view = std::fs::read_to_string(&md).expect("markdown");
    let (_, _, view_section) = section(&after_view, "bench");
    assert!(!after_view.contains("bench-incremental"), "{after_view}");
    assert!(after_view.starts_with(&format!("# Benchmarks\n\n{others}")));
    // A section after the view's, which the incremental one must go before.
    let later = "<!-- soak:start -->\nyet another\n<!-- soak:end -->\n";
    std::fs::write(&md, format!("{after_view}\n{later}")).expect("markdown");
    let view = json("bench.json");
    assert_eq!(view["summary_mode"], "materialized_view");
    let point = &view["scales"][0];
    assert_eq!(point["storage"]["summaries_relation"], "materialized view");
    assert!(
        point["refresh"]["concurrent_secs"].as_f64().is_some(),
        "{point}"
    );
    assert!(point.get("drain").is_none(), "{point}");

    let printed = run_ok(&mut tiny("incremental"));
    assert!(printed.contains("switch to incremental"), "{printed}");
    assert!(!printed.contains("refresh: plain"), "{printed}");
    let both = std::fs::read_to_string(&md).expect("markdown");
    let (_, view_end, view_again) = section(&both, "bench");
    assert_eq!(
        view_again, view_section,
        "the view's section is left as it was"
    );
    let (incr_start, incr_end, incr_section) = section(&both, "bench-incremental");
    assert_eq!(
        &both[view_end..incr_start],
        "\n\n",
        "right after the view's section"
    );
    assert!(
        both.starts_with(&format!("# Benchmarks\n\n{others}")),
        "{both}"
    );
    assert!(both[incr_end..].contains(later), "{both}");
    assert!(
        incr_section.contains("--summary-mode incremental"),
        "{incr_section}"
    );
    assert!(
        incr_section.contains("not applicable in incremental mode"),
        "{incr_section}"
    );
    assert!(
        incr_section.contains("bench-incremental.json"),
        "{incr_section}"
    );

    // Every table row has as many cells as its header.
    for table in incr_section.split("\n\n").filter(|b| b.starts_with('|')) {
        let cells = |line: &str| line.matches('|').count();
        let mut lines = table.lines().filter(|l| l.starts_with('|'));
        let width = cells(lines.next().expect("header"));
        assert!(lines.all(|l| cells(l) == width), "ragged table:\n{table}");
    }

    let incr = json("bench-incremental.json");
    assert_eq!(incr["summary_mode"], "incremental");
    assert_eq!(
        view,
        json("bench.json"),
        "the view's results are left as they were"
    );
    let point = &incr["scales"][0];
    assert_eq!(point["storage"]["summaries_relation"], "table");
    assert!(point.get("refresh").is_none(), "{point}");
    let drain = &point["drain"];
    assert!(
        drain["switch_secs"].as_f64().is_some_and(|s| s > 0.0),
        "{drain}"
    );
    let drains = drain["drains"].as_array().expect("drains");
    assert_eq!(drains.len(), 2, "{drain}");
    for d in drains {
        // Each drain applied the traces written before it.
        assert!(d["traces"].as_i64().is_some_and(|n| n > 0), "{drain}");
    }
    assert!(drain["idle_reads"]["runs"] == 3, "{drain}");
    // Both paths answered every query in this mode too.
    let queries = point["queries"].as_array().expect("queries");
    assert!(!queries.is_empty());
    for q in queries {
        assert!(q["summaries"]["p50_ms"].as_f64().is_some(), "{q}");
        assert!(q["on_the_fly"]["p50_ms"].as_f64().is_some(), "{q}");
    }
    assert!(out.join("latency-incremental.svg").exists());
    assert!(
        !dir.join("postmaster.pid").exists(),
        "the run stops its cluster"
    );
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&out).ok();
}
