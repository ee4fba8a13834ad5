//! A private PostgreSQL cluster started from the system's binaries.
//!
//! Used when no `DATABASE_URL` is given (the demo, tests). The cluster lives in a data
//! directory we own (mode 0700), has no TCP listener, and accepts only password (SCRAM)
//! connections on the Unix socket inside that directory; the passwords are generated at
//! the first start and kept in a 0600 file there ([`crate::credentials`]). So only the
//! directory's owner (and root) can reach it at all. It is stopped when the
//! [`EmbeddedCluster`] is dropped. A small watchdog process also stops it if our
//! process dies without running destructors (SIGKILL, a panicking test binary), so no
//! orphaned postmaster outlives us.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::credentials::{self, Credentials};

/// Names the socket file (`.s.PGSQL.<port>`); nothing listens on TCP, and the socket
/// directory is private to each cluster, so every cluster may use the same number.
const SOCKET_PORT: u16 = 5432;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "no PostgreSQL server binaries found (looked for `pg_config --bindir` and /usr/lib/postgresql/*/bin); \
         install them, e.g. `apt-get install postgresql-15`, or set DATABASE_URL to an existing database"
    )]
    BinariesNotFound,
    #[error("running as root, but there is no `postgres` system user to run PostgreSQL as; create one (`apt-get install postgresql` does) or run as another user")]
    NoPostgresUser,
    #[error("the cluster in {dir} is already running (pid {pid}); stop it or choose another data directory")]
    AlreadyRunning { dir: PathBuf, pid: u32 },
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, EmbeddedError>;

/// How to start the cluster.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    pub data_dir: PathBuf,
    /// Preload pg_cron when its library is installed. Tests turn this off to exercise the
    /// service's own scheduler.
    pub pg_cron: bool,
    /// `false` turns off fsync: for throwaway test clusters only.
    pub durable: bool,
    /// Remove the data directory when the cluster stops (test clusters).
    pub remove_on_stop: bool,
    /// Makes this cluster a node of a Citus cluster on this host (the distributed tests).
    pub citus: Option<CitusNode>,
}

/// What a Citus node needs beyond a private cluster: nodes talk to each other over TCP,
/// so it listens on 127.0.0.1 (password logins only), preloads `citus`, and shares one
/// set of passwords with the other nodes, which its own connections to them find in a
/// 0600 password file in its data directory.
#[derive(Debug, Clone)]
pub struct CitusNode {
    pub port: u16,
    /// Every node of one cluster gets the same passwords: a session on the coordinator
    /// opens its worker connections as the same user.
    pub credentials: Credentials,
    /// Shards per distributed table (`citus.shard_count`); few keep tests fast.
    pub shard_count: u32,
    /// Roles that are not logins of ours but that Citus connects to the other nodes as,
    /// with their passwords: `srql_owner`, whom writer logins act as.
    pub other_roles: Vec<(String, String)>,
}

impl EmbeddedOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            pg_cron: true,
            durable: true,
            remove_on_stop: false,
            citus: None,
        }
    }
}

/// A running private cluster. Stops (fast shutdown) on drop.
#[derive(Debug)]
pub struct EmbeddedCluster {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    port: u16,
    credentials: Credentials,
    run_as: Option<(u32, u32)>,
    pg_cron: bool,
    durable: bool,
    remove_on_stop: bool,
    citus: Option<CitusNode>,
    stopped: bool,
    watchdog: Option<std::process::Child>,
}

impl EmbeddedCluster {
    /// Initialise the data directory if needed and start the server.
    pub fn start(opts: &EmbeddedOptions) -> Result<Self> {
        let bin_dir = find_bin_dir().ok_or(EmbeddedError::BinariesNotFound)?;
        let run_as = if running_as_root() {
            Some(postgres_user().ok_or(EmbeddedError::NoPostgresUser)?)
        } else {
            None
        };
        let data_dir = absolute(&opts.data_dir)?;
        prepare_dir(&data_dir, run_as)?;
        if let Some(pid) = running_pid(&data_dir) {
            if owner_alive(&data_dir) != Some(false) {
                return Err(EmbeddedError::AlreadyRunning { dir: data_dir, pid });
            }
            // Whoever started it is gone (SIGKILL, before its watchdog noticed): an
            // orphan, not a cluster in use.
            tracing::warn!(pid, data_dir = %data_dir.display(), "stopping a cluster left running by a dead srql");
            stop_orphan(&bin_dir, &data_dir, run_as)?;
        }
        if !data_dir.join("PG_VERSION").exists() {
            initdb(&bin_dir, &data_dir, run_as)?;
        }
        let credentials = secure(&bin_dir, &data_dir, run_as, opts.citus.as_ref())?;
        // pg_cron and Citus both want to be preloaded; a Citus node goes without pg_cron.
        let pg_cron = opts.pg_cron && opts.citus.is_none() && pg_cron_installed(&bin_dir);
        let port = opts.citus.as_ref().map_or(SOCKET_PORT, |c| c.port);
        let mut cluster = Self {
            bin_dir,
            data_dir,
            port,
            credentials,
            run_as,
            pg_cron,
            durable: opts.durable,
            remove_on_stop: opts.remove_on_stop,
            citus: opts.citus.clone(),
            stopped: false,
            watchdog: None,
        };
        write_owner(&cluster.data_dir)?;
        cluster.pg_ctl_start()?;
        cluster.watchdog = cluster.spawn_watchdog();
        tracing::info!(
            data_dir = %cluster.data_dir.display(),
            port,
            pg_cron,
            "embedded PostgreSQL started"
        );
        Ok(cluster)
    }

    /// The number in the socket's name (and the TCP port of a Citus node).
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Whether pg_cron was preloaded (its library exists and was asked for).
    pub fn has_pg_cron(&self) -> bool {
        self.pg_cron
    }

    /// A URL for `database` as the `postgres` superuser, over the private socket with
    /// its password.
    pub fn url(&self, database: &str) -> String {
        self.url_as(credentials::SUPERUSER, database)
            .expect("the superuser always has a password")
    }

    /// A URL for `database` as `user`, one of the logins in [`crate::credentials`]; `None`
    /// for a user without a password of ours.
    pub fn url_as(&self, user: &str, database: &str) -> Option<String> {
        let password = self.credentials.password(user)?;
        Some(credentials::socket_url(
            &self.data_dir,
            self.port,
            user,
            password,
            database,
        ))
    }

    /// The generated password of `user`, if it is one of ours.
    pub fn password(&self, user: &str) -> Option<&str> {
        self.credentials.password(user)
    }

    /// Fast shutdown: active sessions are disconnected, the checkpoint is written.
    pub fn stop(&mut self) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        if let Some(mut w) = self.watchdog.take() {
            // Stopping cleanly: the watchdog's job is done.
            let _ = w.kill();
            let _ = w.wait();
        }
        // A server crashed on purpose (tests) has nothing left to stop.
        if running_pid(&self.data_dir).is_some() {
            let out = self
                .command("pg_ctl")
                .arg("stop")
                .arg("-D")
                .arg(&self.data_dir)
                .args(["-m", "fast", "-w", "-t", "60"])
                .output()
                .map_err(|e| cmd_err("pg_ctl stop", e.to_string()))?;
            if !out.status.success() {
                return Err(cmd_err("pg_ctl stop", String::from_utf8_lossy(&out.stderr)));
            }
        }
        if self.remove_on_stop {
            let _ = fs::remove_dir_all(&self.data_dir);
        }
        tracing::info!(data_dir = %self.data_dir.display(), "embedded PostgreSQL stopped");
        Ok(())
    }

    /// The postmaster's pid, while it runs.
    pub fn postmaster_pid(&self) -> Option<u32> {
        running_pid(&self.data_dir)
    }

    /// Fault injection for tests: stops (SIGSTOP) the postmaster and every backend, as a
    /// hung host would. Connections stay open and answer nothing until [`Self::thaw`].
    pub fn freeze(&self) -> Result<()> {
        self.signal_all("STOP")
    }

    /// Resumes what [`Self::freeze`] stopped.
    pub fn thaw(&self) -> Result<()> {
        self.signal_all("CONT")
    }

    /// Fault injection for tests: kills the server as a crash would (immediate mode,
    /// recovery at the next start). The cluster keeps its port for [`Self::start_again`].
    pub fn crash(&mut self) -> Result<()> {
        let out = self
            .command("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "immediate", "-w", "-t", "60"])
            .output()
            .map_err(|e| cmd_err("pg_ctl stop", e.to_string()))?;
        if !out.status.success() {
            return Err(cmd_err("pg_ctl stop", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(())
    }

    /// Starts the server again after [`Self::crash`], on the same port and settings.
    pub fn start_again(&mut self) -> Result<()> {
        if running_pid(&self.data_dir).is_some() {
            return Ok(());
        }
        self.pg_ctl_start()
    }

    /// Sends `signal` to the postmaster and its children (the backends and workers).
    fn signal_all(&self, signal: &str) -> Result<()> {
        let Some(postmaster) = running_pid(&self.data_dir) else {
            return Err(cmd_err(
                "signalling the cluster",
                "the server is not running",
            ));
        };
        let kill = |pids: &[u32]| {
            Command::new("kill")
                .arg(format!("-{signal}"))
                .args(pids.iter().map(|p| p.to_string()))
                .output()
                .map_err(|e| cmd_err("kill", e.to_string()))
        };
        let out = kill(&[postmaster])?;
        if !out.status.success() {
            return Err(cmd_err("kill", String::from_utf8_lossy(&out.stderr)));
        }
        // A child listed a moment ago may have exited since (a backend closing, an
        // autovacuum worker done): that one needs no signal, the others still get it.
        let children = children_of(postmaster);
        if children.is_empty() {
            return Ok(());
        }
        let out = kill(&children)?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && stderr.lines().any(|l| !l.contains("No such process")) {
            return Err(cmd_err("kill", stderr));
        }
        Ok(())
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    fn pg_ctl_start(&self) -> Result<()> {
        let durable = self.durable;
        let log = self.data_dir.join("server.log");
        let mut settings = vec![
            // No TCP at all: the only way in is the socket in the 0700 data directory.
            "-c listen_addresses=''".to_string(),
            format!("-p {}", self.port),
            // The socket lives in the data directory so clusters never collide in /tmp,
            // and only the directory's owner can reach it.
            format!("-c unix_socket_directories='{}'", self.data_dir.display()),
            "-c unix_socket_permissions=0700".into(),
            "-c password_encryption=scram-sha-256".into(),
            "-c max_connections=300".into(),
            "-c shared_buffers=1GB".into(),
            "-c work_mem=64MB".into(),
            "-c maintenance_work_mem=512MB".into(),
            "-c max_wal_size=8GB".into(),
            // Nothing replicates or archives a private cluster, so its WAL only needs to
            // make crashes safe. At `minimal`, a bulk load's day built in the
            // transaction that filled its stage table (`srql_bench::load`) writes no WAL; the
            // files are synced at commit instead. That halves what a load writes: 10M
            // spans went from 72k to 104k spans/s, the disk having been the limit.
            "-c wal_level=minimal".into(),
            "-c max_wal_senders=0".into(),
            "-c checkpoint_timeout=15min".into(),
            "-c max_worker_processes=32".into(),
            "-c max_parallel_workers_per_gather=2".into(),
            "-c log_min_messages=warning".into(),
        ];
        if !durable {
            settings.push("-c fsync=off".into());
            settings.push("-c synchronous_commit=off".into());
            settings.push("-c full_page_writes=off".into());
            settings.push("-c shared_buffers=256MB".into());
        }
        if let Some(node) = &self.citus {
            settings[0] = "-c listen_addresses=127.0.0.1".into();
            settings.push("-c shared_preload_libraries=citus".into());
            settings.push(format!("-c citus.shard_count={}", node.shard_count));
            // Loopback between nodes of one host: no TLS to negotiate.
            settings.push("-c citus.node_conninfo=sslmode=disable".into());
            // Background jobs (the shard rebalancer's moves) connect back to this node
            // by this name; `localhost` would miss the loopback address it listens on and
            // the password file's entries.
            settings.push("-c citus.local_hostname=127.0.0.1".into());
        }
        if self.pg_cron {
            settings.push("-c shared_preload_libraries=pg_cron".into());
            settings.push("-c cron.database_name=postgres".into());
            // Background workers avoid pg_cron opening libpq connections, which would need
            // a password-less route back into the cluster.
            settings.push("-c cron.use_background_workers=on".into());
            settings.push("-c cron.max_running_jobs=8".into());
        }
        let mut pg_ctl = self.command("pg_ctl");
        if self.citus.is_some() {
            // The server's own connections to the other nodes read their passwords here.
            pg_ctl.env("PGPASSFILE", self.data_dir.join(PGPASS_FILE));
            // libpq in the server also looks for client certificates under $HOME, which
            // for a server started by root is a directory `postgres` may not read.
            pg_ctl.env("HOME", &self.data_dir);
        }
        let out = pg_ctl
            .arg("start")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o"])
            .arg(settings.join(" "))
            .output()
            .map_err(|e| cmd_err("pg_ctl start", e.to_string()))?;
        if !out.status.success() {
            let tail = fs::read_to_string(&log)
                .map(|s| s.lines().rev().take(15).collect::<Vec<_>>().join("\n"))
                .unwrap_or_default();
            return Err(cmd_err(
                "pg_ctl start",
                format!("{}\n{tail}", String::from_utf8_lossy(&out.stderr)),
            ));
        }
        Ok(())
    }

    /// Stops the cluster once our process is gone, whatever way it went. It only stops
    /// the postmaster it was started for: a later command may have started a new one in
    /// the same directory by then.
    fn spawn_watchdog(&self) -> Option<std::process::Child> {
        let postmaster = running_pid(&self.data_dir)?;
        let script = format!(
            "while [ -d /proc/{pid} ]; do sleep 1; done; \
             if [ \"$(head -n 1 '{dir}/postmaster.pid' 2>/dev/null)\" = '{postmaster}' ]; then \
             {pg_ctl} stop -D '{dir}' -m immediate >/dev/null 2>&1; {cleanup} fi",
            pid = std::process::id(),
            dir = self.data_dir.display(),
            pg_ctl = self.bin_dir.join("pg_ctl").display(),
            cleanup = if self.remove_on_stop {
                format!("rm -rf '{}';", self.data_dir.display())
            } else {
                String::new()
            },
        );
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C at the terminal must not kill the watchdog
            // before the cluster is stopped.
            .process_group(0);
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        match cmd.spawn() {
            Ok(child) => Some(child),
            Err(e) => {
                tracing::warn!(error = %e, "could not start the cluster watchdog");
                None
            }
        }
    }
}

impl Drop for EmbeddedCluster {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, "stopping embedded PostgreSQL");
        }
    }
}

/// Password file of a Citus node's connections to the other nodes (see [`CitusNode`]).
const PGPASS_FILE: &str = "srql-pgpass";

fn cmd_err(what: &str, detail: impl Into<String>) -> EmbeddedError {
    EmbeddedError::Command {
        what: what.to_string(),
        detail: detail.into().trim().to_string(),
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> EmbeddedError + '_ {
    move |source| EmbeddedError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn absolute(dir: &Path) -> Result<PathBuf> {
    if dir.is_absolute() {
        return Ok(dir.to_path_buf());
    }
    let cwd = std::env::current_dir().map_err(io_err(dir))?;
    Ok(cwd.join(dir))
}

/// The server binaries: `pg_config --bindir` first, then the newest Debian layout.
pub fn find_bin_dir() -> Option<PathBuf> {
    let has_server = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_server(&dir) {
            return Some(dir);
        }
    }
    let mut candidates: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, dir)| has_server(dir))
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, dir)| dir)
}

fn pg_cron_installed(bin_dir: &Path) -> bool {
    let lib_dir = Command::new(bin_dir.join("pg_config"))
        .arg("--pkglibdir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .or_else(|| bin_dir.parent().map(|p| p.join("lib")));
    lib_dir.is_some_and(|d| d.join("pg_cron.so").is_file())
}

fn running_as_root() -> bool {
    // The owner of /proc/self is our effective uid; this avoids an unsafe libc call.
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// uid and gid of the `postgres` system user, from /etc/passwd.
fn postgres_user() -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        if f.next()? != "postgres" {
            return None;
        }
        let _password = f.next()?;
        let uid = f.next()?.parse().ok()?;
        let gid = f.next()?.parse().ok()?;
        Some((uid, gid))
    })
}

fn prepare_dir(dir: &Path, run_as: Option<(u32, u32)>) -> Result<()> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    if let Some((uid, gid)) = run_as {
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(io_err(dir))?;
        // The postgres user must be able to reach the directory through its ancestors.
        let mut ancestor = dir.parent();
        while let Some(a) = ancestor {
            let mode = fs::metadata(a).map_err(io_err(a))?.mode();
            if mode & 0o001 == 0 {
                return Err(cmd_err(
                    "preparing the data directory",
                    format!(
                        "{} is not searchable by the postgres user; choose a data directory under /tmp or /var/lib",
                        a.display()
                    ),
                ));
            }
            ancestor = a.parent();
        }
    }
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;
    Ok(())
}

/// Processes whose parent is `pid`, from /proc.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| {
                    // `pid (comm) state ppid ...`; comm may hold spaces, so split after `)`.
                    let rest = &stat[stat.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// Records which process started the cluster (pid and start time, so a reused pid is
/// not mistaken for us), for [`owner_alive`].
fn write_owner(dir: &Path) -> Result<()> {
    let pid = std::process::id();
    let path = dir.join(OWNER_FILE);
    let started = process_start_time(pid).unwrap_or_default();
    fs::write(&path, format!("{pid} {started}\n")).map_err(io_err(&path))
}

const OWNER_FILE: &str = "srql-owner.pid";

/// Whether the process that started the cluster in `dir` still runs; `None` when
/// nobody recorded it (an older srql, or a server started by hand).
fn owner_alive(dir: &Path) -> Option<bool> {
    let text = fs::read_to_string(dir.join(OWNER_FILE)).ok()?;
    let mut fields = text.split_whitespace();
    let pid: u32 = fields.next()?.parse().ok()?;
    let started = fields.next().unwrap_or_default();
    Some(process_start_time(pid).is_some_and(|s| s == started))
}

/// Field 22 of /proc/<pid>/stat (start time in clock ticks since boot).
fn process_start_time(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ...`; comm may hold spaces, so count fields after `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19).map(str::to_string)
}

/// Stops a postmaster whose owner died: fast shutdown, then immediate if that does not
/// finish, each bounded by pg_ctl's timeout. The old owner's watchdog may be stopping it
/// at the same moment, so only the outcome counts.
fn stop_orphan(bin_dir: &Path, dir: &Path, run_as: Option<(u32, u32)>) -> Result<()> {
    for mode in ["fast", "immediate"] {
        let mut cmd = Command::new(bin_dir.join("pg_ctl"));
        if let Some((uid, gid)) = run_as {
            cmd.uid(uid).gid(gid);
        }
        let _ = cmd
            .arg("stop")
            .arg("-D")
            .arg(dir)
            .args(["-m", mode, "-w", "-t", "30"])
            .stdin(Stdio::null())
            .output();
        if running_pid(dir).is_none() {
            return Ok(());
        }
    }
    Err(cmd_err(
        "stopping the orphaned cluster",
        format!("the server in {} did not stop", dir.display()),
    ))
}

fn running_pid(dir: &Path) -> Option<u32> {
    let pid: u32 = fs::read_to_string(dir.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

fn initdb(bin_dir: &Path, dir: &Path, run_as: Option<(u32, u32)>) -> Result<()> {
    let started = Instant::now();
    let mut cmd = Command::new(bin_dir.join("initdb"));
    if let Some((uid, gid)) = run_as {
        cmd.uid(uid).gid(gid);
    }
    let out = cmd
        .arg("-D")
        .arg(dir)
        .args([
            "-U",
            "postgres",
            // Replaced by `secure` before the first start; never `trust`.
            "--auth-local=peer",
            "--auth-host=reject",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| cmd_err("initdb", e.to_string()))?;
    if !out.status.success() {
        return Err(cmd_err("initdb", String::from_utf8_lossy(&out.stderr)));
    }
    tracing::debug!(elapsed = ?started.elapsed(), "initdb done");
    Ok(())
}

/// Run before every start: the data directory's access rules are ours, whatever version
/// of srql (or whoever) initialised it. pg_hba.conf allows password logins on the socket
/// and nothing else; users without a password in our file get one. A cluster from an
/// older version (`trust`, no credentials file) is converted here.
fn secure(
    bin_dir: &Path,
    dir: &Path,
    run_as: Option<(u32, u32)>,
    citus: Option<&CitusNode>,
) -> Result<Credentials> {
    let file = Credentials::path(dir);
    let mut creds = Credentials::load(dir).map_err(io_err(&file))?;
    let mut added = creds.fill_missing().map_err(io_err(&file))?;
    if let Some(node) = citus {
        if node.credentials != creds {
            creds = node.credentials.clone();
            added.push(credentials::SUPERUSER);
        }
    }
    if added.contains(&credentials::SUPERUSER) {
        let password = creds
            .password(credentials::SUPERUSER)
            .expect("just generated");
        // Hex, generated by us: safe inside a literal.
        single_user(
            bin_dir,
            dir,
            run_as,
            &format!("ALTER ROLE postgres PASSWORD '{password}'"),
        )?;
    }
    // The other logins are created (or their passwords set) once their roles exist, by
    // whoever migrates (`srql`'s database setup, the test harness).
    creds.save(dir).map_err(io_err(&file))?;
    let hba = dir.join("pg_hba.conf");
    let mut rules = String::from(
        "# Written by srql at every start: password (SCRAM) logins on the private socket only.\n\
         local all all scram-sha-256\n",
    );
    if let Some(node) = citus {
        rules.push_str(
            "# A Citus node: the other nodes connect over loopback TCP, with a password.\n",
        );
        rules.push_str("host all all 127.0.0.1/32 scram-sha-256\n");
        write_private(
            &dir.join(PGPASS_FILE),
            &creds
                .users()
                .chain(
                    node.other_roles
                        .iter()
                        .map(|(u, p)| (u.as_str(), p.as_str())),
                )
                .map(|(user, password)| format!("127.0.0.1:*:*:{user}:{password}\n"))
                .collect::<String>(),
            run_as,
        )?;
    }
    write_private(&hba, &rules, run_as)?;
    Ok(creds)
}

/// Writes a file the server reads, owned by the user it runs as, mode 0600.
fn write_private(path: &Path, text: &str, run_as: Option<(u32, u32)>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, text).map_err(io_err(path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io_err(path))?;
    if let Some((uid, gid)) = run_as {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(io_err(path))?;
    }
    Ok(())
}

/// Runs one statement in single-user mode (no server, no connection, no authentication):
/// how the superuser gets its password before the server ever accepts a connection.
fn single_user(
    bin_dir: &Path,
    dir: &Path,
    run_as: Option<(u32, u32)>,
    statement: &str,
) -> Result<()> {
    let mut cmd = Command::new(bin_dir.join("postgres"));
    if let Some((uid, gid)) = run_as {
        cmd.uid(uid).gid(gid);
    }
    let mut child = cmd
        .arg("--single")
        .arg("-D")
        .arg(dir)
        .args(["-c", "exit_on_error=on", "-c", "log_min_messages=warning"])
        .arg("postgres")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| cmd_err("postgres --single", e.to_string()))?;
    // Written then closed: the backend exits at end of input, so the wait is bounded by
    // the statement itself.
    if let Some(mut stdin) = child.stdin.take() {
        writeln!(stdin, "{statement}").map_err(|e| cmd_err("postgres --single", e.to_string()))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| cmd_err("postgres --single", e.to_string()))?;
    if !out.status.success() {
        return Err(cmd_err(
            "postgres --single",
            String::from_utf8_lossy(&out.stderr),
        ));
    }
    Ok(())
}
