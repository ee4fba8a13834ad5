//! A Citus cluster on this host: a coordinator and workers on 127.0.0.1, each a private
//! embedded cluster ([`crate::embedded`] with [`CitusNode`]), all sharing one set of
//! passwords. The distributed tests ([`crate::distributed_testing`]) and the distributed
//! benchmark start theirs with it; a real deployment sets its nodes up as
//! docs/scale-out.md says.

use std::path::{Path, PathBuf};

use crate::credentials::{Credentials, READER_LOGIN, WRITER_LOGIN};
use crate::embedded::{find_bin_dir, CitusNode, EmbeddedCluster, EmbeddedOptions};

/// Writer logins act as `srql_owner`, and Citus opens worker connections as the current
/// role: on Citus it must be able to log in (docs/scale-out.md).
use crate::roles::OWNER;

/// What the nodes of one cluster share.
#[derive(Debug, Clone)]
pub struct Shared {
    pub credentials: Credentials,
    /// `srql_owner`'s password on every node.
    pub owner_password: String,
    /// Shards per distributed table (`citus.shard_count`).
    pub shard_count: u32,
}

impl Shared {
    /// Fresh random passwords for a new cluster.
    pub fn generate(shard_count: u32) -> Result<Self, String> {
        let mut credentials = Credentials::default();
        credentials
            .fill_missing()
            .map_err(|e| format!("random passwords for the Citus cluster: {e}"))?;
        let owner_password = crate::credentials::generate_password()
            .map_err(|e| format!("a random password for {OWNER}: {e}"))?;
        Ok(Self {
            credentials,
            owner_password,
            shard_count,
        })
    }
}

/// Ok when Citus is installed for the PostgreSQL the embedded clusters run; otherwise
/// what is missing and how to install it.
pub fn check_installed() -> Result<(), String> {
    let missing = citus_control().err();
    match missing {
        None => Ok(()),
        Some(missing) => Err(format!(
            "Citus 13 is not installed for this PostgreSQL ({missing}): run \
             scripts/ensure-deps --tests, or install Citus from its own packages (see README \
             and docs/scale-out.md)"
        )),
    }
}

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

fn free_port() -> Result<u16, String> {
    // Bound then released: a port nobody else held a moment ago.
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free TCP port on 127.0.0.1 for a Citus node: {e}"))
}

/// Starts one node from `opts` (its data directory and durability), on a free loopback
/// port, without pg_cron (the service's scheduler drains on Citus).
pub fn start_node(mut opts: EmbeddedOptions, shared: &Shared) -> Result<EmbeddedCluster, String> {
    opts.pg_cron = false;
    opts.citus = Some(CitusNode {
        port: free_port()?,
        credentials: shared.credentials.clone(),
        shard_count: shared.shard_count,
        other_roles: vec![(OWNER.to_string(), shared.owner_password.clone())],
    });
    EmbeddedCluster::start(&opts).map_err(|e| e.to_string())
}

/// Roles are global to each node: every node gets them (from the single-node
/// migrations, applied to a scratch database `roles_db`) and the reader and writer
/// logins, with the passwords all nodes share, before any database of ours is
/// distributed, so Citus finds them everywhere.
pub async fn create_logins_on(
    node: &EmbeddedCluster,
    roles_db: &str,
    shared: &Shared,
) -> Result<(), String> {
    let admin = crate::db::connect(&node.url("postgres"))
        .await
        .map_err(|e| format!("connect to a Citus node: {e}"))?;
    let password = |login| {
        node.password(login)
            .ok_or_else(|| format!("no password for {login}"))
    };
    crate::roles::create_with_logins(
        &admin,
        &node.url(roles_db),
        [
            (READER_LOGIN, password(READER_LOGIN)?),
            (WRITER_LOGIN, password(WRITER_LOGIN)?),
        ],
    )
    .await
    .map_err(|e| format!("roles and logins on a Citus node: {e}"))?;
    // Generated hex and our constant: safe in the statement.
    admin
        .batch_execute(&format!(
            "ALTER ROLE {OWNER} LOGIN PASSWORD '{}'",
            shared.owner_password
        ))
        .await
        .map_err(|e| format!("{OWNER} may not log in to a Citus node: {e}"))
}

/// Database `name` on one node, with the `citus` extension. `name` is ours, never input.
pub async fn create_database_on(node: &EmbeddedCluster, name: &str) -> Result<(), String> {
    let admin = crate::db::connect(&node.url("postgres"))
        .await
        .map_err(|e| format!("connect to a Citus node: {e}"))?;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .map_err(|e| format!("create database {name} on a Citus node: {e}"))?;
    crate::db::connect(&node.url(name))
        .await
        .map_err(|e| format!("connect to {name} on a Citus node: {e}"))?
        .batch_execute("CREATE EXTENSION citus")
        .await
        .map_err(|e| format!("CREATE EXTENSION citus in {name}: {e}"))
}

/// Registers `workers` with the coordinator of database `name` (Citus keeps its node
/// list per database).
pub async fn register(
    coordinator: &EmbeddedCluster,
    workers: &[&EmbeddedCluster],
    name: &str,
) -> Result<(), String> {
    let client = crate::db::connect(&coordinator.url(name))
        .await
        .map_err(|e| format!("connect to the coordinator: {e}"))?;
    client
        .execute(
            "SELECT citus_set_coordinator_host('127.0.0.1', $1)",
            &[&i32::from(coordinator.port())],
        )
        .await
        .map_err(|e| format!("citus_set_coordinator_host: {e}"))?;
    for worker in workers {
        client
            .execute(
                "SELECT citus_add_node('127.0.0.1', $1)",
                &[&i32::from(worker.port())],
            )
            .await
            .map_err(|e| format!("citus_add_node: {e}"))?;
    }
    Ok(())
}

/// A coordinator and its workers, each in a directory below `base`; stopped (and their
/// data removed when asked) when dropped.
pub struct LocalCitus {
    pub coordinator: EmbeddedCluster,
    pub workers: Vec<EmbeddedCluster>,
    /// Removed once the nodes are stopped, when they remove their data.
    base_dir: Option<PathBuf>,
}

/// How [`LocalCitus::start`] makes its nodes.
#[derive(Debug, Clone)]
pub struct LocalCitusOptions {
    /// Each node's data directory goes below it.
    pub base_dir: PathBuf,
    pub workers: usize,
    pub shard_count: u32,
    /// `false`: fsync off (throwaway clusters).
    pub durable: bool,
    pub remove_on_stop: bool,
}

impl LocalCitus {
    /// Starts the nodes and gives each the roles and logins; no database yet.
    pub async fn start(opts: &LocalCitusOptions) -> Result<Self, String> {
        check_installed()?;
        let shared = Shared::generate(opts.shard_count)?;
        let node_opts = |role: &str| {
            let mut o = EmbeddedOptions::new(opts.base_dir.join(role));
            o.durable = opts.durable;
            o.remove_on_stop = opts.remove_on_stop;
            o
        };
        let mut names = vec!["coordinator".to_string()];
        names.extend((1..=opts.workers).map(|i| format!("worker{i}")));
        let mut nodes = Vec::new();
        for name in &names {
            let o = node_opts(name);
            let s = shared.clone();
            let node = tokio::task::spawn_blocking(move || start_node(o, &s))
                .await
                .map_err(|e| e.to_string())??;
            nodes.push(node);
        }
        for node in &nodes {
            create_logins_on(node, "srql_citus_roles", &shared).await?;
        }
        let coordinator = nodes.remove(0);
        Ok(Self {
            coordinator,
            workers: nodes,
            base_dir: opts.remove_on_stop.then(|| opts.base_dir.clone()),
        })
    }

    fn nodes(&self) -> impl Iterator<Item = &EmbeddedCluster> {
        std::iter::once(&self.coordinator).chain(&self.workers)
    }

    /// A fresh database `name` (dropped first if a previous run left it) on every node,
    /// workers registered; returns the coordinator's URL as the superuser.
    pub async fn create_database(&self, name: &str) -> Result<String, String> {
        self.drop_database(name).await?;
        for node in self.nodes() {
            create_database_on(node, name).await?;
        }
        let workers: Vec<&EmbeddedCluster> = self.workers.iter().collect();
        register(&self.coordinator, &workers, name).await?;
        Ok(self.coordinator.url(name))
    }

    /// Drops database `name` on every node, disconnecting whoever still uses it.
    pub async fn drop_database(&self, name: &str) -> Result<(), String> {
        for node in self.nodes() {
            let admin = crate::db::connect(&node.url("postgres"))
                .await
                .map_err(|e| format!("connect to a Citus node: {e}"))?;
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
                .map_err(|e| format!("drop database {name} on a Citus node: {e}"))?;
        }
        Ok(())
    }

    /// Every node's data directory, coordinator first (where the benchmark reads each
    /// postmaster's pid for CPU figures).
    pub fn data_dirs(&self) -> Vec<&Path> {
        self.nodes().map(|n| n.data_dir()).collect()
    }
}

impl Drop for LocalCitus {
    fn drop(&mut self) {
        for node in std::iter::once(&mut self.coordinator).chain(&mut self.workers) {
            if let Err(e) = node.stop() {
                tracing::warn!(error = %e, "stopping a Citus node");
            }
        }
        if let Some(dir) = &self.base_dir {
            // Empty once every node removed its data; anything else left is kept.
            let _ = std::fs::remove_dir(dir);
        }
    }
}
