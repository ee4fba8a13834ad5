//! The architecture invariants of ARCHITECTURE.md that the compiler does not enforce,
//! checked on every test run so they cannot silently rot: which crates may depend on
//! what, and that no source files import each other in a circle.

mod dependencies;
mod import_cycles;

use std::path::PathBuf;

/// The workspace root, from this crate's manifest directory (crates/cli).
fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}
