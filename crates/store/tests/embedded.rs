//! The embedded cluster starts (as root too: we switch to the `postgres` user), serves,
//! and stops cleanly.

use std::time::Duration;

use store::embedded::{EmbeddedCluster, EmbeddedOptions};

fn temp_dir(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("srql-embedded-{tag}-{}", std::process::id()))
}

#[tokio::test]
async fn starts_serves_and_stops() {
    let dir = temp_dir("lifecycle");
    let mut opts = EmbeddedOptions::new(&dir);
    opts.durable = false;
    let mut cluster = EmbeddedCluster::start(&opts).expect("start");
    assert!(dir.join("PG_VERSION").exists(), "initdb ran");
    assert!(dir.join("postmaster.pid").exists(), "server running");

    let client = store::db::connect(&cluster.url("postgres"))
        .await
        .expect("connect");
    let one: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    let user: String = client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(user, "postgres");
    drop(client);

    cluster.stop().expect("stop");
    assert!(
        !dir.join("postmaster.pid").exists(),
        "postmaster gone after stop"
    );
    assert!(!socket(&cluster).exists(), "socket closed after stop");

    // A second start reuses the initialised directory.
    let cluster = EmbeddedCluster::start(&opts).expect("restart");
    let client = store::db::connect(&cluster.url("postgres"))
        .await
        .expect("reconnect");
    client.query_one("SELECT 1", &[]).await.unwrap();
    drop(client);
    drop(cluster);
    assert!(
        !dir.join("postmaster.pid").exists(),
        "drop stops the cluster"
    );
    std::fs::remove_dir_all(&dir).ok();
}

fn socket(cluster: &EmbeddedCluster) -> std::path::PathBuf {
    cluster
        .data_dir()
        .join(format!(".s.PGSQL.{}", cluster.port()))
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().mode() & 0o777
}

/// Issue 11: the cluster used to trust every local TCP connection, as superuser.
#[tokio::test]
async fn only_the_service_can_connect() {
    let dir = temp_dir("private");
    let mut opts = EmbeddedOptions::new(&dir);
    opts.durable = false;
    opts.remove_on_stop = true;
    opts.pg_cron = false;
    let cluster = EmbeddedCluster::start(&opts).expect("start");
    let creds = store::credentials::Credentials::path(&dir);
    assert_eq!(mode(&creds), 0o600, "credentials file is private");
    assert_eq!(mode(&dir), 0o700, "data (and socket) directory is private");

    let client = store::db::connect(&cluster.url("postgres"))
        .await
        .expect("the service connects");
    let listen: String = client
        .query_one("SHOW listen_addresses", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(listen, "", "no TCP listener");
    let rules: Vec<(String, String)> = client
        .query("SELECT type, auth_method FROM pg_hba_file_rules", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        rules,
        vec![("local".to_string(), "scram-sha-256".to_string())],
        "password logins on the socket only"
    );

    let mut no_password = store::db::parse_url(&cluster.url("postgres")).unwrap();
    no_password.password("");
    let err = no_password
        .connect(tokio_postgres::NoTls)
        .await
        .err()
        .expect("no password, no connection");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INVALID_PASSWORD),
        "{err:?}"
    );
    let mut wrong = store::db::parse_url(&cluster.url("postgres")).unwrap();
    wrong.password("not-the-password");
    let err = wrong
        .connect(tokio_postgres::NoTls)
        .await
        .err()
        .expect("wrong password, no connection");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INVALID_PASSWORD),
        "{err:?}"
    );

    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self").unwrap().uid() == 0 {
        // Another local user, even one that knows the password, cannot reach the socket.
        let psql = store::embedded::find_bin_dir().unwrap().join("psql");
        let out = std::process::Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(psql)
            .arg(format!(
                "host={} port={} user=postgres dbname=postgres connect_timeout=5",
                dir.display(),
                cluster.port()
            ))
            .args(["-c", "SELECT 1"])
            .env(
                "PGPASSWORD",
                cluster.password("postgres").expect("superuser password"),
            )
            .output()
            .expect("run psql as nobody");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "nobody connected: {stderr}");
        assert!(stderr.contains("Permission denied"), "{stderr}");
    }
}

/// A data directory initialised by an older version (`trust`, no credentials file) is
/// converted at start.
#[tokio::test]
async fn a_trusting_cluster_is_converted_at_start() {
    let dir = temp_dir("convert");
    let mut opts = EmbeddedOptions::new(&dir);
    opts.durable = false;
    opts.remove_on_stop = false;
    opts.pg_cron = false;
    let mut cluster = EmbeddedCluster::start(&opts).expect("start");
    let old_password = cluster.password("postgres").unwrap().to_string();
    cluster.stop().expect("stop");
    drop(cluster);
    std::fs::remove_file(store::credentials::Credentials::path(&dir)).unwrap();
    let hba = dir.join("pg_hba.conf");
    std::fs::write(
        &hba,
        "local all all trust\nhost all all 127.0.0.1/32 trust\n",
    )
    .unwrap();

    opts.remove_on_stop = true;
    let cluster = EmbeddedCluster::start(&opts).expect("start the old directory");
    assert!(!std::fs::read_to_string(&hba).unwrap().contains("trust"));
    assert_ne!(cluster.password("postgres").unwrap(), old_password);
    let client = store::db::connect(&cluster.url("postgres"))
        .await
        .expect("connect with the new password");
    client.query_one("SELECT 1", &[]).await.unwrap();
}

#[tokio::test]
async fn refuses_a_directory_whose_cluster_is_running() {
    let dir = temp_dir("busy");
    let mut opts = EmbeddedOptions::new(&dir);
    opts.durable = false;
    opts.remove_on_stop = true;
    let _cluster = EmbeddedCluster::start(&opts).expect("start");
    let err = EmbeddedCluster::start(&opts).expect_err("second start must fail");
    assert!(err.to_string().contains("already running"), "{err}");
}

#[tokio::test]
async fn runs_the_server_as_postgres_when_root() {
    let dir = temp_dir("owner");
    let mut opts = EmbeddedOptions::new(&dir);
    opts.durable = false;
    opts.remove_on_stop = true;
    let cluster = EmbeddedCluster::start(&opts).expect("start");
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata("/proc/self").unwrap().uid();
    let owner = std::fs::metadata(dir.join("PG_VERSION")).unwrap().uid();
    if me == 0 {
        assert_ne!(
            owner, 0,
            "data files must belong to the postgres user, not root"
        );
    } else {
        assert_eq!(owner, me);
    }
    let client = store::db::connect(&cluster.url("postgres"))
        .await
        .expect("connect");
    client.query_one("SELECT 1", &[]).await.unwrap();
}

/// A child process (this test binary, re-run in a special mode) starts a cluster, reports
/// its port and hangs; we SIGKILL it, so no destructor runs, and the watchdog must stop
/// the postmaster.
#[test]
fn watchdog_stops_the_cluster_when_the_owner_is_killed() {
    if let Ok(dir) = std::env::var("SRQL_WATCHDOG_CHILD_DIR") {
        let mut opts = EmbeddedOptions::new(dir);
        opts.durable = false;
        opts.remove_on_stop = true;
        let _cluster = EmbeddedCluster::start(&opts).expect("child start");
        println!("READY");
        std::thread::sleep(Duration::from_secs(600));
        return;
    }
    use std::io::BufRead;
    let dir = temp_dir("watchdog");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "watchdog_stops_the_cluster_when_the_owner_is_killed",
            "--nocapture",
        ])
        .env("SRQL_WATCHDOG_CHILD_DIR", &dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().unwrap();
    assert!(
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.trim() == "READY"),
        "child reports its cluster started"
    );
    let socket = dir.join(".s.PGSQL.5432");
    assert!(socket.exists(), "cluster up");
    child.kill().expect("kill child");
    child.wait().ok();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while socket.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "cluster still up 30 s after its owner died"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    while dir.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "data directory not removed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The embedded cluster runs at `wal_level = minimal`, so a bulk load's days, built and
/// indexed in the transaction that filled their stage tables, write next to no WAL: the
/// disk writes each span once instead of twice.
#[tokio::test]
async fn bulk_loaded_days_skip_the_wal() {
    let dir = temp_dir("wal");
    let mut opts = EmbeddedOptions::new(&dir);
    opts.durable = false;
    opts.remove_on_stop = true;
    let cluster = EmbeddedCluster::start(&opts).expect("start");
    let admin = store::db::connect(&cluster.url("postgres"))
        .await
        .expect("connect");
    admin
        .batch_execute("CREATE DATABASE walcheck")
        .await
        .unwrap();
    let url = cluster.url("walcheck");
    let mut client = store::db::connect(&url).await.expect("connect");
    store::migrate::run(&mut client).await.expect("migrate");

    let now = chrono::Utc::now();
    let config = workload::WorkloadConfig::for_spans(
        3,
        50_000,
        now - chrono::Duration::days(2),
        now - chrono::Duration::days(1),
    );
    let before: i64 = client
        .query_one("SELECT (pg_current_wal_lsn() - '0/0')::bigint", &[])
        .await
        .unwrap()
        .get(0);
    let report = srql_bench::load::bulk(&url, config, 2, |_| {})
        .await
        .expect("bulk load");
    let row = client
        .query_one(
            "SELECT (pg_current_wal_lsn() - '0/0')::bigint,
                    (SELECT sum(pg_total_relation_size(inhrelid))::bigint
                     FROM pg_inherits WHERE inhparent = 'otel_traces'::regclass)",
            &[],
        )
        .await
        .unwrap();
    let (after, stored): (i64, i64) = (row.get(0), row.get(1));
    let wal = after - before;
    assert!(
        report
            .days
            .values()
            .all(|o| *o != srql_bench::load::DayOutcome::Copied),
        "{:?}",
        report.days
    );
    // A load that logged its days would write at least what it stores (each page once,
    // and the records); what is left is catalogs, statistics and the summaries.
    assert!(
        wal * 2 < stored,
        "{wal} bytes of WAL for {stored} bytes of spans and indexes"
    );
}

#[tokio::test]
async fn fault_hooks_freeze_and_crash_the_server_and_bring_it_back() {
    let dir = temp_dir("faults");
    let mut opts = EmbeddedOptions::new(&dir);
    opts.durable = false;
    opts.remove_on_stop = true;
    opts.pg_cron = false;
    let mut cluster = EmbeddedCluster::start(&opts).expect("start");
    let url = cluster.url("postgres");
    let client = store::db::connect(&url).await.expect("connect");

    cluster.freeze().expect("freeze");
    let frozen = tokio::time::timeout(
        Duration::from_millis(500),
        client.query_one("SELECT 1", &[]),
    )
    .await;
    assert!(frozen.is_err(), "a frozen server answers nothing");
    cluster.thaw().expect("thaw");
    let one: i32 = tokio::time::timeout(Duration::from_secs(10), client.query_one("SELECT 1", &[]))
        .await
        .expect("answers once thawed")
        .expect("query")
        .get(0);
    assert_eq!(one, 1);

    let port = cluster.port();
    cluster.crash().expect("crash");
    assert!(
        cluster.postmaster_pid().is_none(),
        "no postmaster after a crash"
    );
    assert!(store::db::connect(&url).await.is_err(), "nothing listens");
    cluster.start_again().expect("start again");
    assert_eq!(cluster.port(), port, "same port after a restart");
    let client = store::db::connect(&url).await.expect("reconnect");
    client
        .query_one("SELECT 1", &[])
        .await
        .expect("query after restart");
}

/// Issue 11: starting right after the previous owner was SIGKILLed failed once with
/// "already running (pid N)". The child starts a cluster and hangs; we SIGKILL it and
/// its watchdog (as an OOM kill or `kill -9` of everything of ours would; otherwise the
/// watchdog races us and usually stops the server first), then start at once.
#[tokio::test]
async fn a_cluster_orphaned_by_sigkill_is_recovered_at_the_next_start() {
    if let Ok(dir) = std::env::var("SRQL_ORPHAN_CHILD_DIR") {
        let mut opts = EmbeddedOptions::new(dir);
        opts.durable = false;
        opts.pg_cron = false;
        let _cluster = EmbeddedCluster::start(&opts).expect("child start");
        println!("READY");
        std::thread::sleep(Duration::from_secs(600));
        return;
    }
    use std::io::BufRead;
    let dir = temp_dir("orphan");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_cluster_orphaned_by_sigkill_is_recovered_at_the_next_start",
            "--nocapture",
        ])
        .env("SRQL_ORPHAN_CHILD_DIR", &dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().unwrap();
    assert!(
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.trim() == "READY"),
        "child reports its cluster started"
    );
    let watchdogs = shell_children_of(child.id());
    child.kill().expect("kill child");
    child.wait().ok();
    for pid in watchdogs {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    let orphan = std::fs::read_to_string(dir.join("postmaster.pid"))
        .expect("the orphaned server still runs");
    let orphan_pid = orphan.lines().next().unwrap().trim().to_string();
    assert!(std::path::Path::new(&format!("/proc/{orphan_pid}")).exists());

    let mut opts = EmbeddedOptions::new(&dir);
    opts.durable = false;
    opts.pg_cron = false;
    opts.remove_on_stop = true;
    let cluster = EmbeddedCluster::start(&opts).expect("the next start recovers");
    assert_ne!(
        cluster.postmaster_pid().map(|p| p.to_string()),
        Some(orphan_pid),
        "a new server"
    );
    let client = store::db::connect(&cluster.url("postgres"))
        .await
        .expect("connect");
    client.query_one("SELECT 1", &[]).await.unwrap();
}

/// Processes running `sh` whose parent is `pid` (the cluster watchdog).
fn shell_children_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                return false;
            };
            let Some(close) = stat.rfind(')') else {
                return false;
            };
            let comm = stat[..close].rsplit('(').next().unwrap_or("");
            let ppid = stat[close + 1..].split_whitespace().nth(1);
            comm == "sh" && ppid == Some(&pid.to_string())
        })
        .collect()
}
