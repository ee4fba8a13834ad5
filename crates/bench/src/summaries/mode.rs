//! What differs between the two summary modes `srql bench` measures, apart from the
//! measurements themselves: the files a run writes and the BENCHMARKS.md section it owns.
//! Each mode has its own, so that the latest run of each stands beside the other's.

use std::path::{Path, PathBuf};

use store::summaries::SummaryMode;

/// The view-mode section; the incremental one is placed right after it.
pub const VIEW_SECTION: &str = "bench";
pub const INCREMENTAL_SECTION: &str = "bench-incremental";

/// Where one mode's run writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outputs {
    pub json: PathBuf,
    pub svg: PathBuf,
    /// Hand-written notes on the recorded run, read if present.
    pub notes: PathBuf,
    /// The marked BENCHMARKS.md section.
    pub section: &'static str,
    /// The section a missing `section` is created after (none: appended at the end).
    pub after: Option<&'static str>,
}

pub fn outputs(mode: SummaryMode, out_dir: &Path) -> Outputs {
    match mode {
        SummaryMode::MaterializedView => Outputs {
            json: out_dir.join("bench.json"),
            svg: out_dir.join("latency.svg"),
            notes: out_dir.join("notes.md"),
            section: VIEW_SECTION,
            after: None,
        },
        SummaryMode::Incremental => Outputs {
            json: out_dir.join("bench-incremental.json"),
            svg: out_dir.join("latency-incremental.svg"),
            notes: out_dir.join("notes-incremental.md"),
            section: INCREMENTAL_SECTION,
            after: Some(VIEW_SECTION),
        },
    }
}

/// How the report names the mode.
pub fn describe(mode: SummaryMode) -> &'static str {
    match mode {
        SummaryMode::MaterializedView => "materialized-view mode",
        SummaryMode::Incremental => "incremental mode",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_modes_never_share_a_file_or_section() {
        let dir = Path::new("out");
        let view = outputs(SummaryMode::MaterializedView, dir);
        let incr = outputs(SummaryMode::Incremental, dir);
        assert_ne!(view.json, incr.json);
        assert_ne!(view.svg, incr.svg);
        assert_ne!(view.notes, incr.notes);
        assert_ne!(view.section, incr.section);
        assert_eq!(incr.after, Some(view.section));
    }
}
