//! The Citus cluster of the distributed tests: a coordinator and two workers on
//! 127.0.0.1, each a private cluster of its own ([`crate::embedded`], with
//! [`CitusNode`]), started by the first test of a process and stopped (data removed)
//! when it exits. Every test gets a fresh database on all three nodes, with the `citus`
//! extension and the workers registered. Without Citus installed, the tests fail saying
//! what to install; they never skip.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::credentials::{Credentials, READER_LOGIN, WRITER_LOGIN};
use crate::embedded::{find_bin_dir, CitusNode, EmbeddedCluster};

/// Few shards per table: each day partition of each table has this many, on two workers.
const SHARD_COUNT: u32 = 4;
const WORKERS: usize = 2;

struct Cluster {
    coordinator: EmbeddedCluster,
    workers: Vec<EmbeddedCluster>,
    /// A third worker, started by the first test that grows its cluster and registered
    /// only in that test's databases (Citus keeps its node list per database).
    spare: OnceLock<EmbeddedCluster>,
    credentials: Credentials,
}

impl Cluster {
    fn nodes(&self) -> impl Iterator<Item = &EmbeddedCluster> {
        std::iter::once(&self.coordinator).chain(&self.workers)
    }
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static START_LOCK: Mutex<()> = Mutex::new(());
static COUNTER: AtomicU32 = AtomicU32::new(0);
static LOGINS: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
static SPARE_LOGINS: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
/// Writer logins act as this role, and Citus opens worker connections as the current
/// role: on Citus it must be able to log in (docs/scale-out.md).
const OWNER: &str = "srql_owner";
static OWNER_PASSWORD: OnceLock<String> = OnceLock::new();
/// Registering workers copies roles and metadata to them; two registrations at once
/// (tests of one process start together) fail on the worker, so they take turns.
static REGISTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Where the server looks for `citus.control`, if Citus is installed for it.
fn citus_control() -> Result<PathBuf, String> {
    let bin = find_bin_dir().ok_or("no PostgreSQL server binaries found")?;
    let out = std::process::Command::new(bin.join("pg_config"))
        .arg("--sharedir")
        .output()
        .map_err(|e| format!("pg_config --sharedir: {e}"))?;
    let share = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let control = share.join("extension").join("citus.control");
    if control.is_file() {
        Ok(control)
    } else {
        Err(format!("{} is missing", control.display()))
    }
}

fn free_port() -> u16 {
    // Bound then released: a port nobody else held a moment ago.
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free TCP port on 127.0.0.1 for a Citus node")
}

/// One node: a private cluster of its own on a free loopback port, removed at exit.
fn start_node(role: &str, credentials: &Credentials, owner_password: &str) -> EmbeddedCluster {
    let mut opts = crate::testing::throwaway_cluster(&format!("srql-citus-{role}"));
    opts.pg_cron = false;
    opts.citus = Some(CitusNode {
        port: free_port(),
        credentials: credentials.clone(),
        shard_count: SHARD_COUNT,
        other_roles: vec![(OWNER.to_string(), owner_password.to_string())],
    });
    EmbeddedCluster::start(&opts)
        .unwrap_or_else(|e| panic!("starting the Citus {role} for the tests: {e}"))
}

fn cluster() -> &'static Cluster {
    let _guard = START_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    CLUSTER.get_or_init(|| {
        if let Err(missing) = citus_control() {
            panic!(
                "the distributed tests need Citus 13 installed for this PostgreSQL ({missing}): \
                 run scripts/ensure-deps --tests, or install Citus from its own packages \
                 (see README and docs/scale-out.md)"
            );
        }
        let mut credentials = Credentials::default();
        credentials
            .fill_missing()
            .expect("random passwords for the Citus test cluster");
        let owner_password =
            crate::credentials::generate_password().expect("a random password for srql_owner");
        OWNER_PASSWORD
            .set(owner_password.clone())
            .expect("the cluster starts once");
        let start = |role: &str| start_node(role, &credentials, &owner_password);
        Cluster {
            coordinator: start("coordinator"),
            workers: (1..=WORKERS)
                .map(|i| start(&format!("worker{i}")))
                .collect(),
            spare: OnceLock::new(),
            credentials,
        }
    })
}

/// Roles are global to each node: every node gets them (from the single-node
/// migrations) and the reader and writer logins, with the passwords all nodes share,
/// before any test database exists, so Citus finds them everywhere.
async fn create_logins(cluster: &Cluster) {
    for node in cluster.nodes() {
        create_logins_on(node).await;
    }
}

async fn create_logins_on(node: &EmbeddedCluster) {
    let admin = crate::db::connect(&node.url("postgres"))
        .await
        .expect("connect to a Citus node");
    let password = |login| node.password(login).expect("a password for each login");
    crate::testing::create_roles_and_logins(
        &admin,
        &node.url(&format!("c_{}_roles", std::process::id())),
        [
            (READER_LOGIN, password(READER_LOGIN)),
            (WRITER_LOGIN, password(WRITER_LOGIN)),
        ],
    )
    .await;
    let owner_password = OWNER_PASSWORD.get().expect("set when the cluster started");
    // Generated hex and our constant: safe in the statement.
    admin
        .batch_execute(&format!(
            "ALTER ROLE {OWNER} LOGIN PASSWORD '{owner_password}'"
        ))
        .await
        .expect("srql_owner may log in to the nodes");
}

/// The test database `name` on one node, with the `citus` extension.
async fn create_database_on(node: &EmbeddedCluster, name: &str) {
    let admin = crate::db::connect(&node.url("postgres"))
        .await
        .expect("connect to a Citus node");
    // The name is ours, built from integers: not user input.
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a test database on a Citus node");
    crate::db::connect(&node.url(name))
        .await
        .expect("connect to the test database on a Citus node")
        .batch_execute("CREATE EXTENSION citus")
        .await
        .expect("CREATE EXTENSION citus");
}

/// A fresh database on the coordinator and every worker, workers registered.
pub struct CitusTestDb {
    pub name: String,
    /// The coordinator's database, as the superuser.
    pub url: String,
}

impl CitusTestDb {
    /// A new database with `citus` and its workers, no migration applied.
    pub async fn empty() -> CitusTestDb {
        let cluster = cluster();
        LOGINS.get_or_init(|| create_logins(cluster)).await;
        let name = format!(
            "c_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let _turn = REGISTER.lock().await;
        for node in cluster.nodes() {
            create_database_on(node, &name).await;
        }
        let coordinator = crate::db::connect(&cluster.coordinator.url(&name))
            .await
            .expect("connect to the coordinator");
        let port = |node: &EmbeddedCluster| i32::from(node.port());
        coordinator
            .execute(
                "SELECT citus_set_coordinator_host('127.0.0.1', $1)",
                &[&port(&cluster.coordinator)],
            )
            .await
            .expect("citus_set_coordinator_host");
        for worker in &cluster.workers {
            coordinator
                .execute("SELECT citus_add_node('127.0.0.1', $1)", &[&port(worker)])
                .await
                .expect("citus_add_node");
        }
        CitusTestDb {
            url: cluster.coordinator.url(&name),
            name,
        }
    }

    /// The coordinator's database, as the superuser.
    pub async fn client(&self) -> tokio_postgres::Client {
        crate::db::connect(&self.url)
            .await
            .expect("connect to the coordinator")
    }

    /// The coordinator's database as the reader login (SELECT only, read-only).
    pub fn reader_url(&self) -> String {
        self.url_as(READER_LOGIN)
    }

    /// The coordinator's database as the writer login (ingest and maintenance).
    pub fn writer_url(&self) -> String {
        self.url_as(WRITER_LOGIN)
    }

    fn url_as(&self, login: &str) -> String {
        cluster()
            .coordinator
            .url_as(login, &self.name)
            .expect("the cluster has a password for each of our logins")
    }

    /// Grows this database's cluster by a third worker (started once per process, with
    /// the same logins as the others) and registers it; its shards come only by a
    /// rebalance. Returns the new worker's port.
    pub async fn add_worker(&self) -> u16 {
        let cluster = cluster();
        let spare = {
            let _guard = START_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            cluster.spare.get_or_init(|| {
                let owner = OWNER_PASSWORD.get().expect("set when the cluster started");
                start_node("worker-spare", &cluster.credentials, owner)
            })
        };
        SPARE_LOGINS.get_or_init(|| create_logins_on(spare)).await;
        let _turn = REGISTER.lock().await;
        create_database_on(spare, &self.name).await;
        self.client()
            .await
            .execute(
                "SELECT citus_add_node('127.0.0.1', $1)",
                &[&i32::from(spare.port())],
            )
            .await
            .expect("citus_add_node for the third worker");
        spare.port()
    }

    /// This database on each worker, as the superuser.
    pub fn worker_urls(&self) -> Vec<String> {
        cluster()
            .workers
            .iter()
            .map(|w| w.url(&self.name))
            .collect()
    }
}
