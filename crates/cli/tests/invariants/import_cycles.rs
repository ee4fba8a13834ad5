//! No source files of one crate import each other in a circle. A circle means neither
//! file can be read, tested or moved without the other; the layering ARCHITECTURE.md
//! describes only holds if imports point one way.
//!
//! The file graph: each crate's module tree is followed from `lib.rs`/`main.rs` through
//! `mod x;` declarations; file A imports file B when A names an item through a
//! `crate::`, `super::` or `self::` path that resolves into B's module. Declaring a child
//! module is not an import (otherwise every child using its parent would be a circle),
//! and paths inside inline modules (`mod tests { use super::*; }`) resolve from there.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type ModPath = Vec<String>;

/// One crate's files, keyed by module path.
struct Crate {
    files: BTreeMap<ModPath, PathBuf>,
}

impl Crate {
    fn load(root_file: &Path) -> Crate {
        let mut files = BTreeMap::new();
        collect(root_file, Vec::new(), true, &mut files);
        Crate { files }
    }

    /// The file whose module holds the item a module path names: the deepest
    /// file-backed module along the path.
    fn file_of(&self, path: &[String]) -> Option<&PathBuf> {
        (0..=path.len())
            .rev()
            .find_map(|n| self.files.get(&path[..n]))
    }

    /// (importing file, imported file) for every import between two different files.
    fn imports(&self) -> BTreeSet<(PathBuf, PathBuf)> {
        let mut edges = BTreeSet::new();
        for (module, file) in &self.files {
            let source = strip_comments(&std::fs::read_to_string(file).expect("source"));
            for (inline, path) in paths_in(&source) {
                let mut here = module.clone();
                here.extend(inline);
                let Some(target) = resolve(&here, &path).and_then(|p| self.file_of(&p)) else {
                    continue;
                };
                if target != file {
                    edges.insert((file.clone(), target.clone()));
                }
            }
        }
        edges
    }
}

/// Follows `mod x;` declarations from a file into `x.rs` or `x/mod.rs`.
fn collect(file: &Path, module: ModPath, owns_dir: bool, out: &mut BTreeMap<ModPath, PathBuf>) {
    let source = strip_comments(&std::fs::read_to_string(file).expect("source"));
    let dir = if owns_dir {
        file.parent().unwrap().to_path_buf()
    } else {
        file.with_extension("")
    };
    out.insert(module.clone(), file.to_path_buf());
    for line in source.lines() {
        let line = line.trim();
        let line = line.strip_prefix("pub(crate) ").unwrap_or(line);
        let line = line.strip_prefix("pub ").unwrap_or(line);
        let Some(name) = line.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) else {
            continue;
        };
        let mut child = module.clone();
        child.push(name.trim().to_string());
        let flat = dir.join(format!("{}.rs", name.trim()));
        if flat.exists() {
            collect(&flat, child, false, out);
        } else {
            collect(&dir.join(name.trim()).join("mod.rs"), child, true, out);
        }
    }
}

/// Line comments removed, so doc links and prose naming a path are not imports.
fn strip_comments(source: &str) -> String {
    source
        .lines()
        .map(|line| match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::`/`super::`/`self::` path in a file, with the inline modules it sits
/// in. `use` groups (`use crate::{a::X, b::{Y, Z}}`) are expanded.
fn paths_in(source: &str) -> Vec<(ModPath, Vec<String>)> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut pending_use = String::new();
    for line in source.lines() {
        let trimmed = line.trim();
        let inline_names: ModPath = inline.iter().map(|(n, _)| n.clone()).collect();
        if !pending_use.is_empty()
            || trimmed.starts_with("use ")
            || trimmed.starts_with("pub use ")
            || trimmed.starts_with("pub(crate) use ")
        {
            pending_use.push_str(trimmed);
            if trimmed.ends_with(';') {
                let body = pending_use
                    .split_once("use ")
                    .map(|(_, b)| b)
                    .unwrap_or("")
                    .trim_end_matches(';');
                for path in expand_group(body) {
                    out.push((inline_names.clone(), path));
                }
                pending_use.clear();
            }
        } else {
            for path in inline_paths(trimmed) {
                out.push((inline_names.clone(), path));
            }
        }
        let opens_inline = trimmed
            .trim_start_matches("pub ")
            .strip_prefix("mod ")
            .and_then(|r| r.strip_suffix('{'))
            .map(|n| n.trim().to_string());
        if let Some(name) = opens_inline {
            inline.push((name, depth));
        }
        for c in line.chars() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if inline.last().is_some_and(|(_, d)| *d == depth) {
                        inline.pop();
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// `a::{b, c::{d, e}}` → [a::b, a::c::d, a::c::e], keeping only relative-to-crate roots.
fn expand_group(body: &str) -> Vec<Vec<String>> {
    fn expand(prefix: &str, rest: &str, out: &mut Vec<String>) {
        let rest = rest.trim();
        match rest.find('{') {
            None => out.push(format!("{prefix}{rest}")),
            Some(open) => {
                let head = &rest[..open];
                let inner = &rest[open + 1..rest.rfind('}').unwrap_or(rest.len())];
                let mut level = 0;
                let mut start = 0;
                for (i, c) in inner.char_indices() {
                    match c {
                        '{' => level += 1,
                        '}' => level -= 1,
                        ',' if level == 0 => {
                            expand(&format!("{prefix}{head}"), &inner[start..i], out);
                            start = i + 1;
                        }
                        _ => {}
                    }
                }
                if !inner[start..].trim().is_empty() {
                    expand(&format!("{prefix}{head}"), &inner[start..], out);
                }
            }
        }
    }
    let mut flat = Vec::new();
    expand("", body, &mut flat);
    flat.iter()
        .map(|p| {
            p.split(" as ")
                .next()
                .unwrap()
                .split("::")
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty() && s != "*" && s != "self")
                .collect::<Vec<_>>()
        })
        .filter(|p| {
            matches!(
                p.first().map(String::as_str),
                Some("crate" | "super" | "self")
            )
        })
        .collect()
}

/// `crate::a::b`, `super::x` and `self::y` paths written inside code.
fn inline_paths(line: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for root in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(at) = line[from..].find(root) {
            let start = from + at;
            from = start + root.len();
            let before = line[..start].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let path: String = line[start..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push(
                path.split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
            );
        }
    }
    out
}

/// A path made absolute from the module it is written in.
fn resolve(here: &[String], path: &[String]) -> Option<ModPath> {
    let mut segments = path.iter().peekable();
    let mut module: ModPath = match segments.peek().map(|s| s.as_str()) {
        Some("crate") => {
            segments.next();
            Vec::new()
        }
        Some("self") => {
            segments.next();
            here.to_vec()
        }
        Some("super") => here.to_vec(),
        _ => return None,
    };
    while segments.peek().is_some_and(|s| *s == "super") {
        segments.next();
        module.pop()?;
    }
    module.extend(segments.cloned());
    Some(module)
}

/// Strongly connected components with more than one file (Tarjan).
fn circles(edges: &BTreeSet<(PathBuf, PathBuf)>) -> Vec<BTreeSet<PathBuf>> {
    struct State<'a> {
        next: BTreeMap<&'a PathBuf, Vec<&'a PathBuf>>,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        on_stack: BTreeSet<&'a PathBuf>,
        found: Vec<BTreeSet<PathBuf>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a PathBuf) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.next.get(v).cloned().unwrap_or_default() {
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = BTreeSet::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on_stack.remove(w);
                component.insert(w.clone());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        next: BTreeMap::new(),
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for (from, to) in edges {
        state.next.entry(from).or_default().push(to);
    }
    let nodes: Vec<&PathBuf> = state.next.keys().copied().collect();
    for v in nodes {
        if !state.index.contains_key(v) {
            visit(&mut state, v);
        }
    }
    state.found
}

fn crate_roots(workspace: &Path) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = std::fs::read_dir(workspace.join("crates"))
        .expect("crates/")
        .flat_map(|entry| {
            let src = entry.expect("entry").path().join("src");
            [src.join("lib.rs"), src.join("main.rs")]
        })
        .filter(|f| f.exists())
        .collect();
    roots.sort();
    roots
}

fn relative(workspace: &Path, files: &BTreeSet<PathBuf>) -> Vec<String> {
    files
        .iter()
        .map(|f| f.strip_prefix(workspace).unwrap().display().to_string())
        .collect()
}

#[test]
fn no_source_files_import_each_other_in_a_circle() {
    let workspace = super::workspace_root();
    let roots = crate_roots(&workspace);
    assert!(roots.len() >= 8, "found the crates: {roots:?}");
    let mut found = Vec::new();
    for root in roots {
        for circle in circles(&Crate::load(&root).imports()) {
            found.push(relative(&workspace, &circle).join(" ↔ "));
        }
    }
    assert!(
        found.is_empty(),
        "source files importing each other in a circle:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_circle_finder_finds_a_circle() {
    // The check above passes by finding nothing; prove it resolves paths and finds one.
    let a = PathBuf::from("a.rs");
    let b = PathBuf::from("b.rs");
    let c = PathBuf::from("c.rs");
    let edges = BTreeSet::from([
        (a.clone(), b.clone()),
        (b.clone(), a.clone()),
        (b.clone(), c.clone()),
    ]);
    assert_eq!(circles(&edges), vec![BTreeSet::from([a, b])]);

    let here: ModPath = vec!["bench".into(), "api".into()];
    let path = |s: &str| s.split("::").map(str::to_string).collect::<Vec<_>>();
    assert_eq!(
        resolve(&here, &path("super::Args")),
        Some(path("bench::Args"))
    );
    assert_eq!(
        resolve(&here, &path("crate::args::X")),
        Some(path("args::X"))
    );
    assert_eq!(
        expand_group("crate::{a::X, b::{c::Y, Z}}"),
        vec![
            path("crate::a::X"),
            path("crate::b::c::Y"),
            path("crate::b::Z")
        ]
    );
    let nested = paths_in("mod tests {\n    use super::*;\n}\n");
    assert_eq!(nested, vec![(vec!["tests".to_string()], path("super"))]);
}
