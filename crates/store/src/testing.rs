//! Test harness: a real PostgreSQL for every test, never a mock, never a skip.
//!
//! With `DATABASE_URL` set, tests create their databases on that server. Otherwise the
//! first test in a process starts one embedded cluster (fsync off, removed at exit) and
//! every test gets a fresh database of its own, so tests run in parallel without
//! seeing each other's rows.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::embedded::{EmbeddedCluster, EmbeddedOptions};

struct Server {
    /// URL of the maintenance database (`postgres`) on the test server.
    admin_url: String,
    has_pg_cron: bool,
    reader: Login,
    writer: Login,
    _cluster: Option<EmbeddedCluster>,
}

/// A login user in one of the least-privilege roles (crate::roles).
#[derive(Clone)]
struct Login {
    user: String,
    password: String,
}

static SERVER: OnceLock<Server> = OnceLock::new();
static COUNTER: AtomicU32 = AtomicU32::new(0);
static START_LOCK: Mutex<()> = Mutex::new(());
/// Set once the roles and the reader and writer logins exist on the server.
static LOGINS: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

fn server() -> &'static Server {
    let _guard = START_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    SERVER.get_or_init(|| {
        if let Ok(url) = std::env::var("DATABASE_URL") {
            let mut config = crate::db::parse_url(&url)
                .unwrap_or_else(|e| panic!("DATABASE_URL for tests: {e}"));
            config.dbname("postgres");
            // Per process: test binaries share an external server and run at once.
            let login = |group: &str| Login {
                user: format!("srql_test_{group}_{}", std::process::id()),
                password: crate::credentials::generate_password()
                    .expect("random password for a test login"),
            };
            return Server {
                admin_url: url_of(&config),
                has_pg_cron: true,
                reader: login("reader"),
                writer: login("writer"),
                _cluster: None,
            };
        }
        let opts = throwaway_cluster("srql-test");
        let cluster = EmbeddedCluster::start(&opts)
            .unwrap_or_else(|e| panic!("tests need PostgreSQL and none was configured: {e}"));
        let login = |user: &str| Login {
            user: user.to_string(),
            password: cluster
                .password(user)
                .expect("the cluster has a password for each of our logins")
                .to_string(),
        };
        Server {
            admin_url: cluster.url("postgres"),
            has_pg_cron: cluster.has_pg_cron(),
            reader: login(crate::credentials::READER_LOGIN),
            writer: login(crate::credentials::WRITER_LOGIN),
            _cluster: Some(cluster),
        }
    })
}

/// Options of a test cluster under the temporary directory, named `prefix`, the
/// process and the time: fsync off and removed when it stops. Shared with the Citus
/// test cluster (`distributed_testing`), whose nodes are such clusters too.
pub(crate) fn throwaway_cluster(prefix: &str) -> EmbeddedOptions {
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let mut opts = EmbeddedOptions::new(dir);
    opts.durable = false;
    opts.remove_on_stop = true;
    opts
}

async fn create_logins(server: &Server) {
    let admin = crate::db::connect(&server.admin_url)
        .await
        .expect("connect to the test server");
    let mut config = crate::db::parse_url(&server.admin_url).expect("admin url");
    config.dbname(format!("t_{}_roles", std::process::id()));
    let logins = [
        (server.reader.user.as_str(), server.reader.password.as_str()),
        (server.writer.user.as_str(), server.writer.password.as_str()),
    ];
    create_roles_and_logins(&admin, &url_of(&config), logins).await;
}

/// The roles come from migration 0006 ([`crate::roles::create_with_logins`]), then the
/// reader and writer logins in them.
async fn create_roles_and_logins(
    admin: &tokio_postgres::Client,
    roles_db_url: &str,
    logins: [(&str, &str); 2],
) {
    crate::roles::create_with_logins(admin, roles_db_url, logins)
        .await
        .expect("roles and the reader and writer logins on the test server");
}

fn url_of(config: &tokio_postgres::Config) -> String {
    use crate::credentials::encode;
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        // A socket directory is a path: one URL host only once percent-encoded.
        Some(tokio_postgres::config::Host::Unix(p)) => encode(&p.display().to_string()),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = encode(config.get_user().unwrap_or("postgres"));
    let password = config
        .get_password()
        .map(|p| format!(":{}", encode(&String::from_utf8_lossy(p))))
        .unwrap_or_default();
    let db = config.get_dbname().unwrap_or("postgres");
    format!("postgres://{user}{password}@{host}:{port}/{db}?connect_timeout=10")
}

/// A fresh, empty database for one test. Dropped when the value is dropped is not
/// attempted (a test may leave connections open); the cluster is discarded at exit.
pub struct TestDb {
    pub url: String,
    pub name: String,
}

impl TestDb {
    /// A new empty database (no migrations applied).
    pub async fn empty() -> TestDb {
        let server = server();
        LOGINS.get_or_init(|| create_logins(server)).await;
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let admin = crate::db::connect(&server.admin_url)
            .await
            .expect("connect to the test server");
        // The name is ours, built from integers: not user input.
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let mut config = crate::db::parse_url(&server.admin_url).expect("admin url");
        config.dbname(&name);
        TestDb {
            url: url_of(&config),
            name,
        }
    }

    /// A new database with every migration applied.
    pub async fn migrated() -> TestDb {
        let db = Self::empty().await;
        let mut client = db.client().await;
        crate::migrate::run(&mut client).await.expect("migrate");
        db
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        crate::db::connect(&self.url)
            .await
            .expect("connect to test database")
    }

    /// This database as a login in `srql_reader` (SELECT only, read-only transactions).
    pub fn reader_url(&self) -> String {
        self.url_as(&server().reader)
    }

    /// This database as a login in `srql_writer` (ingest and maintenance, no superuser).
    pub fn writer_url(&self) -> String {
        self.url_as(&server().writer)
    }

    fn url_as(&self, login: &Login) -> String {
        let mut config = crate::db::parse_url(&self.url).expect("test url");
        config.user(&login.user).password(&login.password);
        url_of(&config)
    }

    /// URL of the maintenance database on the same server.
    pub fn admin_url() -> String {
        server().admin_url.clone()
    }

    /// Whether the test server has pg_cron preloaded.
    pub fn server_has_pg_cron() -> bool {
        server().has_pg_cron
    }
}

/// Set to `1` to run the tests that load spans with their days sealed: the differential,
/// late-span and incremental tests then read columnar days (scripts/test runs them both
/// ways).
pub const SEAL_ENV: &str = "SRQL_TEST_SEAL";

/// Whether [`SEAL_ENV`] asks for sealed days.
pub fn sealing_requested() -> bool {
    std::env::var(SEAL_ENV).is_ok_and(|v| v == "1")
}

impl TestDb {
    /// Seals every day that has ended (as `seal_after` = 0 would), when [`SEAL_ENV`]
    /// asks for it, and returns how many; does nothing otherwise. Fails, saying what to
    /// install, when sealing is asked for and citus_columnar is missing.
    pub async fn seal_if_requested(&self) -> usize {
        if sealing_requested() {
            self.seal_ended_days().await
        } else {
            0
        }
    }

    /// Seals every day that has ended; returns how many. Fails when citus_columnar is
    /// missing or a day could not be sealed.
    pub async fn seal_ended_days(&self) -> usize {
        let mut client = self.client().await;
        let round = crate::sealing::seal_due(
            &mut client,
            chrono::Duration::zero(),
            chrono::Duration::days(36_500),
        )
        .await
        .expect("seal ended days");
        assert!(
            !round.unavailable,
            "sealed tests need citus_columnar: run scripts/ensure-deps (Citus 13, see README)"
        );
        assert!(!round.busy, "nobody else seals a test database");
        assert!(
            round.postponed.is_empty(),
            "days not sealed: {:?}",
            round.postponed
        );
        round.sealed.len()
    }
}
