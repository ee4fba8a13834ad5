//! Rewriting one marked section of a Markdown file (BENCHMARKS.md), between
//! `<!-- NAME:start -->` and `<!-- NAME:end -->`, leaving everything else as it was. Each
//! benchmark command owns one section.

/// A new file starts with this.
const NEW_FILE_INTRO: &str = "# Benchmarks\n\n\
    Measured figures for this repository. Each section is written by the tool named in it;\n\
    rerun that tool rather than editing its section by hand.\n";

/// `existing` (the current file, if any) with `section` between the markers of `name`.
/// Text outside the markers is kept; without markers the section is appended. Markers
/// that are out of order or repeated are an error rather than a guess.
pub fn splice(existing: Option<&str>, name: &str, section: &str) -> Result<String, String> {
    splice_after(existing, name, None, section)
}

/// [`splice`], except that a section not there yet goes right after the section `after`
/// when that one is there (once), so related sections stay together.
pub fn splice_after(
    existing: Option<&str>,
    name: &str,
    after: Option<&str>,
    section: &str,
) -> Result<String, String> {
    let start = format!("<!-- {name}:start -->");
    let end = format!("<!-- {name}:end -->");
    let block = format!("{start}\n{}\n{end}", section.trim_end());
    let Some(text) = existing else {
        return Ok(format!("{NEW_FILE_INTRO}\n{block}\n"));
    };
    let starts = text.matches(&start).count();
    let ends = text.matches(&end).count();
    match (starts, ends) {
        (0, 0) => {
            let neighbour = after.map(|a| format!("<!-- {a}:end -->"));
            if let Some(n) = neighbour.filter(|n| text.matches(n.as_str()).count() == 1) {
                let at = text.find(&n).map_or(text.len(), |i| i + n.len());
                return Ok(format!("{}\n\n{block}{}", &text[..at], &text[at..]));
            }
            let sep = if text.is_empty() || text.ends_with("\n\n") {
                ""
            } else if text.ends_with('\n') {
                "\n"
            } else {
                "\n\n"
            };
            Ok(format!("{text}{sep}{block}\n"))
        }
        (1, 1) => {
            let (Some(s), Some(e)) = (text.find(&start), text.find(&end)) else {
                return Err("markers vanished".into());
            };
            if e < s {
                return Err(format!("`{end}` comes before `{start}`"));
            }
            Ok(format!("{}{block}{}", &text[..s], &text[e + end.len()..]))
        }
        _ => Err(format!(
            "expected one `{start}` and one `{end}` line, found {starts} and {ends}"
        )),
    }
}

/// [`splice`] applied to the file at `path` (created if missing).
pub fn rewrite(path: &std::path::Path, name: &str, section: &str) -> Result<(), String> {
    rewrite_after(path, name, None, section)
}

/// [`splice_after`] applied to the file at `path` (created if missing).
pub fn rewrite_after(
    path: &std::path::Path,
    name: &str,
    after: Option<&str>,
    section: &str,
) -> Result<(), String> {
    let existing = match std::fs::read_to_string(path) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let text = splice_after(existing.as_deref(), name, after, section)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::{splice, splice_after};

    #[test]
    fn a_new_section_goes_right_after_its_neighbour() {
        let before = "# B\n\n<!-- bench:start -->\nview\n<!-- bench:end -->\n\n<!-- otlp:start -->\no\n<!-- otlp:end -->\n";
        let out = splice_after(Some(before), "bench-incremental", Some("bench"), "incr\n").unwrap();
        assert_eq!(
            out,
            "# B\n\n<!-- bench:start -->\nview\n<!-- bench:end -->\n\n\
             <!-- bench-incremental:start -->\nincr\n<!-- bench-incremental:end -->\n\n\
             <!-- otlp:start -->\no\n<!-- otlp:end -->\n"
        );
        // Once there, it is rewritten in place, and the neighbour is untouched.
        let again = splice_after(Some(&out), "bench-incremental", Some("bench"), "incr 2").unwrap();
        assert_eq!(again, out.replace("\nincr\n", "\nincr 2\n"));
        // Without the neighbour, appended as before.
        assert_eq!(
            splice_after(Some("# B\n"), "bench-incremental", Some("bench"), "t").unwrap(),
            "# B\n\n<!-- bench-incremental:start -->\nt\n<!-- bench-incremental:end -->\n"
        );
    }

    #[test]
    fn keeps_everything_outside_its_own_markers() {
        let before =
            "# Benchmarks\n\nother work\n\n<!-- bench:start -->\nx\n<!-- bench:end -->\n\n\
                      <!-- incremental:start -->\nold\n<!-- incremental:end -->\n\ntrailing\n";
        let out = splice(Some(before), "incremental", "new table\n").unwrap();
        assert_eq!(
            out,
            "# Benchmarks\n\nother work\n\n<!-- bench:start -->\nx\n<!-- bench:end -->\n\n\
             <!-- incremental:start -->\nnew table\n<!-- incremental:end -->\n\ntrailing\n"
        );
        // Splicing twice is stable.
        assert_eq!(splice(Some(&out), "incremental", "new table").unwrap(), out);
    }

    #[test]
    fn creates_or_appends() {
        let fresh = splice(None, "bench", "t").unwrap();
        assert!(fresh.starts_with("# Benchmarks\n"));
        assert!(fresh.ends_with("<!-- bench:start -->\nt\n<!-- bench:end -->\n"));
        assert_eq!(
            splice(Some("# B\n"), "bench", "t").unwrap(),
            "# B\n\n<!-- bench:start -->\nt\n<!-- bench:end -->\n"
        );
        assert_eq!(
            splice(Some("# B\nbody"), "otlp", "t\n").unwrap(),
            "# B\nbody\n\n<!-- otlp:start -->\nt\n<!-- otlp:end -->\n"
        );
    }

    #[test]
    fn refuses_broken_markers() {
        let name = "bench";
        assert!(splice(
            Some("<!-- bench:end -->\n<!-- bench:start -->\n"),
            name,
            "t"
        )
        .is_err());
        assert!(splice(Some("<!-- bench:start -->\n"), name, "t").is_err());
        assert!(splice(
            Some("<!-- bench:start -->\n<!-- bench:end -->\n<!-- bench:start -->\n<!-- bench:end -->"),
            name,
            "t"
        )
        .is_err());
    }
}
