//! Where and on what the benchmark ran, so figures can be compared across machines.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub postgres: String,
    /// `git rev-parse --short HEAD`, or `unknown` outside a checkout.
    pub commit: String,
    /// Whether the working tree had uncommitted changes when the benchmark ran.
    pub dirty: bool,
}

impl Machine {
    pub async fn describe(url: &str) -> Result<Self, String> {
        let client = store::db::connect(url).await.map_err(|e| e.to_string())?;
        let postgres: String = client
            .query_one("SELECT current_setting('server_version')", &[])
            .await
            .map_err(|e| e.to_string())?
            .get(0);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Ok(Self {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model: cpu_model(&cpuinfo).unwrap_or_else(|| "unknown".into()),
            memory_gib: memory_kib(&meminfo).map_or(0.0, |k| k as f64 / (1024.0 * 1024.0)),
            postgres,
            commit: git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into()),
            dirty: git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty()),
        })
    }
}

/// CPU time, in clock ticks, of the whole machine and of the benchmark itself (this
/// process and, when known, the embedded cluster's processes). Two samples tell how much
/// of the machine other processes used meanwhile: figures from a shared machine are only
/// comparable with that share beside them.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    busy: u64,
    total: u64,
    ours: Option<u64>,
}

impl CpuSample {
    /// `postmaster`: the embedded cluster's postmaster, whose children are its backends.
    pub fn take(postmaster: Option<u32>) -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let ticks: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let field = |i: usize| ticks.get(i).copied().unwrap_or(0);
        let idle = field(3) + field(4);
        let busy = field(0) + field(1) + field(2) + field(5) + field(6) + field(7);
        let own = process_ticks("self", true)?;
        let cluster = postmaster.and_then(cluster_ticks);
        Some(Self {
            busy,
            total: busy + idle,
            ours: cluster.map(|c| c + own),
        })
    }

    /// Share of the machine's CPU time from `earlier` to `self` used by processes other
    /// than the benchmark's, in 0..=1; `None` when the database is not ours to measure.
    pub fn others_share_since(&self, earlier: &CpuSample) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total)?;
        let busy = self.busy.checked_sub(earlier.busy)?;
        let ours = self.ours?.checked_sub(earlier.ours?)?;
        (total > 0).then(|| (busy.saturating_sub(ours) as f64 / total as f64).clamp(0.0, 1.0))
    }
}

/// Clock ticks per second of `/proc`'s CPU times (USER_HZ, 100 on Linux).
pub const TICKS_PER_SEC: f64 = 100.0;

/// CPU time, in clock ticks, a PostgreSQL server has used since it started: its
/// postmaster's, its live processes' and those of the backends that exited (in the
/// postmaster's children's time).
pub fn cluster_ticks(postmaster: u32) -> Option<u64> {
    let pid = postmaster;
    let live: u64 = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()?
        .split_whitespace()
        .filter_map(|c| process_ticks(c, false))
        .sum();
    Some(process_ticks(&pid.to_string(), true)? + live)
}

/// utime + stime of `/proc/<pid>`, plus its waited-for children's when `children`.
fn process_ticks(pid: &str, children: bool) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it are plain numbers.
    let fields: Vec<u64> = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let own = fields.get(11)? + fields.get(12)?;
    Some(if children {
        own + fields.get(13)? + fields.get(14)?
    } else {
        own
    })
}

/// The pid of the postmaster running in `data_dir`.
pub fn postmaster_pid(data_dir: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

fn memory_kib(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Output of a read-only git command, trimmed; `None` when git is missing or fails.
fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_files() {
        let cpu = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(cpu_model(cpu).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(
            memory_kib("MemTotal:       24596328 kB\nMemFree: 1 kB\n"),
            Some(24_596_328)
        );
        assert_eq!(cpu_model(""), None);
    }

    #[test]
    fn other_processes_share_of_the_machine() {
        let a = CpuSample {
            busy: 100,
            total: 400,
            ours: Some(50),
        };
        let b = CpuSample {
            busy: 250,
            total: 600,
            ours: Some(150),
        };
        // 150 busy ticks of 200, 100 of them ours: others used 50 of 200.
        assert_eq!(b.others_share_since(&a), Some(0.25));
        let external = CpuSample { ours: None, ..b };
        assert_eq!(external.others_share_since(&a), None);
        let now = CpuSample::take(None).expect("/proc is readable");
        assert!(now.total >= now.busy && now.ours.is_none());
    }
}
