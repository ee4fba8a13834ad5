//! The Citus cluster of the distributed tests: a coordinator and two workers on
//! 127.0.0.1, each a private cluster of its own ([`crate::embedded`], with
//! [`crate::embedded::CitusNode`]), started by the first test of a process and stopped (data removed)
//! when it exits. Every test gets a fresh database on all three nodes, with the `citus`
//! extension and the workers registered. Without Citus installed, the tests fail saying
//! what to install; they never skip.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::citus_local::{self, Shared};
use crate::credentials::{READER_LOGIN, WRITER_LOGIN};
use crate::embedded::EmbeddedCluster;

/// Few shards per table: each day partition of each table has this many, on two workers.
const SHARD_COUNT: u32 = 4;
const WORKERS: usize = 2;

struct Cluster {
    coordinator: EmbeddedCluster,
    workers: Vec<EmbeddedCluster>,
    /// A third worker, started by the first test that grows its cluster and registered
    /// only in that test's databases (Citus keeps its node list per database).
    spare: OnceLock<EmbeddedCluster>,
    shared: Shared,
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
/// Registering workers copies roles and metadata to them; two registrations at once
/// (tests of one process start together) fail on the worker, so they take turns.
static REGISTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One node: a private cluster of its own on a free loopback port, removed at exit.
fn start_node(role: &str, shared: &Shared) -> EmbeddedCluster {
    let opts = crate::testing::throwaway_cluster(&format!("srql-citus-{role}"));
    citus_local::start_node(opts, shared)
        .unwrap_or_else(|e| panic!("starting the Citus {role} for the tests: {e}"))
}

fn cluster() -> &'static Cluster {
    let _guard = START_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    CLUSTER.get_or_init(|| {
        if let Err(missing) = citus_local::check_installed() {
            panic!("the distributed tests need {missing}");
        }
        let shared = Shared::generate(SHARD_COUNT).expect("passwords for the Citus test cluster");
        let start = |role: &str| start_node(role, &shared);
        Cluster {
            coordinator: start("coordinator"),
            workers: (1..=WORKERS)
                .map(|i| start(&format!("worker{i}")))
                .collect(),
            spare: OnceLock::new(),
            shared,
        }
    })
}

/// Every node gets the roles and logins before any test database exists
/// ([`citus_local::create_logins_on`]).
async fn create_logins(cluster: &Cluster) {
    for node in cluster.nodes() {
        create_logins_on(node, &cluster.shared).await;
    }
}

async fn create_logins_on(node: &EmbeddedCluster, shared: &Shared) {
    citus_local::create_logins_on(node, &format!("c_{}_roles", std::process::id()), shared)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

async fn create_database_on(node: &EmbeddedCluster, name: &str) {
    citus_local::create_database_on(node, name)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
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
        let workers: Vec<&EmbeddedCluster> = cluster.workers.iter().collect();
        citus_local::register(&cluster.coordinator, &workers, &name)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
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
            cluster
                .spare
                .get_or_init(|| start_node("worker-spare", &cluster.shared))
        };
        SPARE_LOGINS
            .get_or_init(|| create_logins_on(spare, &cluster.shared))
            .await;
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
