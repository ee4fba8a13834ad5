//! Dependency rules, read from `cargo metadata`'s resolved graph (normal dependencies,
//! transitively: what a crate's library actually links).

use serde_json::Value;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::process::Command;

/// The query core is pure: parsing and planning never wait on I/O, so they must not pull
/// in a runtime, a database driver or an HTTP stack. So is the span row, which the
/// workload generator shares with ingest without linking a driver.
const PURE_CRATES: &[&str] = &["srql-lang", "srql-plan", "span-row"];

fn forbidden_in_pure_crates(name: &str) -> bool {
    matches!(
        name,
        "tokio" | "tokio-postgres" | "postgres" | "sqlx" | "axum" | "hyper"
    ) || name.starts_with("deadpool")
}

/// What ships to users; none of it may carry benchmark code.
const PRODUCT_CRATES: &[&str] = &[
    "srql-lang",
    "srql-plan",
    "span-row",
    "store",
    "server",
    "otlp",
    "tls",
];

/// The crate holding the benchmarks and the workload loader (issue 12, item 3).
const BENCH_CRATES: &[&str] = &["srql-bench"];

/// The synthetic workload generator belongs to benchmarks and demos, not to the product.
const WORKLOAD_CRATE: &str = "workload";

/// Product crates allowed to depend on `workload`: none since the loader moved into the
/// benchmark crate (issue 12, item 3). Their tests may, as dev-dependencies.
const KNOWN_WORKLOAD_DEPENDENTS: &[&str] = &[];

/// The platform this test runs on, as rustc names it.
fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let out = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .trim()
        .to_string()
}

/// Package name → the names of its normal (non-dev, non-build) dependencies.
struct Graph {
    deps: HashMap<String, Vec<String>>,
    workspace_members: Vec<String>,
}

impl Graph {
    fn load() -> Graph {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        // The host's dependencies only: the others (Windows crates) are never downloaded
        // here, and offline is how a test run must work.
        let out = Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--locked", "--offline"])
            .args(["--filter-platform", &host_triple()])
            .current_dir(super::workspace_root())
            .output()
            .expect("cargo metadata runs");
        assert!(
            out.status.success(),
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
        let name_of: HashMap<&str, &str> = meta["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
            .collect();
        let workspace_members = meta["workspace_members"]
            .as_array()
            .expect("workspace_members")
            .iter()
            .map(|id| name_of[id.as_str().unwrap()].to_string())
            .collect();
        let mut deps: HashMap<String, Vec<String>> = HashMap::new();
        for node in meta["resolve"]["nodes"].as_array().expect("resolve.nodes") {
            let name = name_of[node["id"].as_str().unwrap()].to_string();
            let normal = node["deps"]
                .as_array()
                .expect("deps")
                .iter()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .expect("dep_kinds")
                        .iter()
                        .any(|k| k["kind"].is_null())
                })
                .map(|d| name_of[d["pkg"].as_str().unwrap()].to_string());
            deps.entry(name).or_default().extend(normal);
        }
        Graph {
            deps,
            workspace_members,
        }
    }

    fn is_member(&self, name: &str) -> bool {
        self.workspace_members.iter().any(|m| m == name)
    }

    /// Every package `root` links, each with the chain that brings it in.
    fn reachable(&self, root: &str) -> BTreeMap<String, Vec<String>> {
        let mut chains: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut queue = VecDeque::from([vec![root.to_string()]]);
        while let Some(chain) = queue.pop_front() {
            let last = chain.last().unwrap();
            for dep in self.deps.get(last).into_iter().flatten() {
                if dep != root && !chains.contains_key(dep) {
                    let mut next = chain.clone();
                    next.push(dep.clone());
                    chains.insert(dep.clone(), next.clone());
                    queue.push_back(next);
                }
            }
        }
        chains
    }

    /// The chains by which `crates` reach a package `bad` accepts.
    fn violations(&self, crates: &[&str], bad: impl Fn(&str) -> bool) -> Vec<String> {
        let mut found = Vec::new();
        for krate in crates {
            assert!(self.is_member(krate), "{krate} is no workspace member");
            for (dep, chain) in self.reachable(krate) {
                if bad(&dep) {
                    found.push(chain.join(" → "));
                }
            }
        }
        found
    }
}

#[test]
fn the_query_core_links_no_runtime_database_driver_or_http_stack() {
    let graph = Graph::load();
    let found = graph.violations(PURE_CRATES, forbidden_in_pure_crates);
    assert!(
        found.is_empty(),
        "srql-lang and srql-plan must stay pure, but:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_product_crate_links_the_benchmark_crate() {
    let graph = Graph::load();
    // Renaming the crate must not make this check pass by finding nothing.
    assert!(
        BENCH_CRATES.iter().all(|b| graph.is_member(b)),
        "the benchmark crate {BENCH_CRATES:?} is no workspace member"
    );
    let found = graph.violations(PRODUCT_CRATES, |dep| BENCH_CRATES.contains(&dep));
    assert!(
        found.is_empty(),
        "product crates must not carry benchmark code, but:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_product_crate_links_the_workload_generator_beyond_the_known_ones() {
    let graph = Graph::load();
    let checked: Vec<&str> = PRODUCT_CRATES
        .iter()
        .copied()
        .filter(|c| !KNOWN_WORKLOAD_DEPENDENTS.contains(c))
        .collect();
    let found = graph.violations(&checked, |dep| dep == WORKLOAD_CRATE);
    assert!(
        found.is_empty(),
        "product crates must not depend on the synthetic workload, but:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_rules_catch_a_forbidden_dependency() {
    // The checks above pass by finding nothing; prove they would find something.
    let graph = Graph::load();
    assert!(!graph
        .violations(&["server"], |dep| dep == "tokio-postgres")
        .is_empty());
    assert!(!graph
        .violations(&["srql-cli"], forbidden_in_pure_crates)
        .is_empty());
}
