//! The crate's layout rules, checked on its own source: every file under `src/` opens with a
//! `//!` line saying what it owns, and no file imports, directly or through others, a file that
//! imports it (no import circles). A re-export in `lib.rs` does not hide a circle: a path through
//! the crate root is followed to the file that defines the item.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, with its module path (`crate`, `crate::cache`, …).
fn modules(dir: &Path, path: &str, out: &mut BTreeMap<String, PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for entry in entries {
        let name = entry.file_stem().unwrap().to_str().unwrap().to_owned();
        if entry.is_dir() {
            modules(&entry, &format!("{path}::{name}"), out);
        } else if entry.extension().is_some_and(|e| e == "rs") {
            let module = match name.as_str() {
                "lib" | "mod" => path.to_owned(),
                _ => format!("{path}::{name}"),
            };
            out.insert(module, entry);
        }
    }
}

/// The code of a file without comments, and without its `#[cfg(test)]` module (tests may use
/// the whole crate).
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]").or_else(|| text.find("#[cfg(all(test")) {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths `text` names: `crate::a::b`, `super::a`, `self::a`, each made absolute from
/// `module`, with the segments after them (braces and globs cut). `super` and `self` are read
/// relative to the file, so an inline module (`mod fuzz { … }`) names its siblings by
/// absolute path.
fn paths(module: &str, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(at) = text[from..].find(start) {
            let at = from + at;
            from = at + start.len();
            if at > 0
                && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_' || bytes[at - 1] == b':')
            {
                continue;
            }
            let tail: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let segments: Vec<&str> = tail.split("::").filter(|s| !s.is_empty()).collect();
            let mut absolute: Vec<String> = match segments[0] {
                "crate" => vec!["crate".to_owned()],
                "self" => module.split("::").map(str::to_owned).collect(),
                // `super` in `a/b.rs` (module crate::a::b) is crate::a.
                _ => {
                    let mut parent: Vec<String> = module.split("::").map(str::to_owned).collect();
                    parent.pop();
                    parent
                }
            };
            absolute.extend(segments[1..].iter().map(|s| (*s).to_owned()));
            found.push(absolute.join("::"));
        }
    }
    found
}

/// The module that defines each name `lib.rs` re-exports (`pub use module::{A, B}`).
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let code = code(lib);
    for statement in code.split(';') {
        let statement = statement.trim();
        let Some(rest) = statement.strip_prefix("pub use ") else {
            continue;
        };
        let (module, names) = match rest.find("::{") {
            Some(at) => (&rest[..at], rest[at + 3..].trim_end_matches('}')),
            None => rest.rsplit_once("::").unwrap(),
        };
        for name in names.split(',') {
            let name = name.trim();
            if !name.is_empty() {
                map.insert(name.to_owned(), format!("crate::{module}"));
            }
        }
    }
    map
}

/// The file (module) a path lands in: its longest prefix that is a module, following a root
/// re-export to where the item is defined.
fn target(path: &str, modules: &BTreeMap<String, PathBuf>, reexports: &BTreeMap<String, String>) -> String {
    let segments: Vec<&str> = path.split("::").collect();
    if segments.len() >= 2 && segments[0] == "crate" {
        if let Some(module) = reexports.get(segments[1]) {
            return target(module, modules, reexports);
        }
    }
    (1..=segments.len())
        .rev()
        .map(|n| segments[..n].join("::"))
        .find(|prefix| modules.contains_key(prefix))
        .unwrap_or_else(|| "crate".to_owned())
}

#[test]
fn every_source_file_says_what_it_owns_and_no_imports_go_in_circles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    modules(&src, "crate", &mut files);
    let lib = std::fs::read_to_string(&files["crate"]).unwrap();
    let reexports = reexports(&lib);

    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, file) in &files {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            text.starts_with("//!"),
            "{} must open with a `//!` line saying what it owns",
            file.display()
        );
        if module == "crate" {
            continue; // lib.rs declares and re-exports: it imports nothing
        }
        let edges = paths(module, &code(&text))
            .iter()
            .map(|path| target(path, &files, &reexports))
            .filter(|to| to != module && to != "crate")
            .collect();
        graph.insert(module.clone(), edges);
    }

    // A depth-first search that reports the first cycle it meets.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        if let Some(cycle) = visit(module, &graph, &mut Vec::new(), &mut done) {
            panic!("import circle: {}", cycle.join(" -> "));
        }
    }
    // The check sees the imports at all: `service` uses `cache`.
    assert!(graph["crate::service"].contains("crate::cache"), "{graph:#?}");
}
