//! The workspace's layout rules, checked on its own source with a parser (`syn`), every file
//! read whole: every file under a member crate's `src/` opens with a `//!` line saying what it
//! owns and has at most [`MAX_LINES`] lines (inline tests count), and no module imports,
//! directly or through others, a module that imports it (no import circles), within a crate
//! and across the workspace's crates.
//!
//! An import is any path in the code that starts at `crate`, `self`, `super` or another member
//! crate, in a `use` or inline (`crate::fleet::Fleet` in a signature). A path is followed to
//! the module that *defines* its item, through any `use` that brought the name into a module:
//! a re-export (`pub use self::builder::IdentityCacheBuilder`) is a door, not an import, so a
//! `mod.rs` may re-export its children while they use what it defines. A test module (inline
//! `#[cfg(test)] mod tests { … }` or a `tests.rs` file) is a module of its own that nothing
//! imports, so tests may use the whole crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// The longest a file under `src/` may be.
const MAX_LINES: usize = 600;

/// Files still being split, each with the issue that splits it: allowed over [`MAX_LINES`]
/// until then. The test fails when one of them is short enough to leave the list.
const BEING_SPLIT: &[(&str, &str)] = &[];

/// A member crate: its name as code writes it (`tower_amazon_auth`) and its `src/`.
struct Member {
    name: String,
    src: PathBuf,
}

/// The workspace's members with a `src/`, from the root manifest's `members` (and the root
/// package itself).
fn members() -> Vec<Member> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest: toml::Table = std::fs::read_to_string(root.join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let mut dirs = vec![root.to_path_buf()];
    if let Some(listed) = manifest
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(|m| m.as_array())
    {
        dirs.extend(listed.iter().map(|m| root.join(m.as_str().unwrap())));
    }
    dirs.sort();
    dirs.dedup();
    dirs.into_iter()
        .filter(|dir| dir.join("src").is_dir())
        .map(|dir| {
            let manifest: toml::Table = std::fs::read_to_string(dir.join("Cargo.toml"))
                .unwrap()
                .parse()
                .unwrap();
            let name = manifest["package"]["name"].as_str().unwrap().replace('-', "_");
            Member {
                name,
                src: dir.join("src"),
            }
        })
        .collect()
}

/// Every `.rs` file under `dir`, by module path (`tower_amazon_auth`, `tower_amazon_auth::cache`…).
fn files(dir: &Path, path: &str, out: &mut BTreeMap<String, PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for entry in entries {
        let name = entry.file_stem().unwrap().to_str().unwrap().to_owned();
        if entry.is_dir() {
            files(&entry, &format!("{path}::{name}"), out);
        } else if entry.extension().is_some_and(|e| e == "rs") {
            let module = match name.as_str() {
                "lib" | "mod" | "main" => path.to_owned(),
                _ => format!("{path}::{name}"),
            };
            out.insert(module, entry);
        }
    }
}

/// What one module holds, as the graph needs it.
#[derive(Default, Debug)]
struct Module {
    /// Names a `use` brings in, each with the absolute path it names.
    uses: BTreeMap<String, String>,
    /// Absolute paths the module's own code (not its re-exports) names.
    imports: BTreeSet<String>,
    /// Whether the module is a test module.
    test: bool,
}

/// Reads one parsed file into `modules`, inline modules as modules of their own.
struct Reader<'a> {
    krate: &'a str,
    crates: &'a BTreeSet<String>,
    /// Every file's module, so a path relative to the current module (`use cache::X` in
    /// `lib.rs`) is known for one.
    known: &'a BTreeSet<String>,
    /// The module being read, innermost last.
    stack: Vec<String>,
    modules: &'a mut BTreeMap<String, Module>,
}

impl Reader<'_> {
    fn current(&self) -> &str {
        self.stack.last().unwrap()
    }

    /// `segments` made absolute from the current module, or `None` for a path that leaves the
    /// workspace (`std::…`) or is local (`x.len()`).
    fn absolute(&self, segments: &[String]) -> Option<String> {
        let first = segments.first()?;
        let mut path: Vec<String> = match first.as_str() {
            "crate" => vec![self.krate.to_owned()],
            "self" => self.current().split("::").map(str::to_owned).collect(),
            "super" => {
                let mut parent: Vec<String> = self.current().split("::").map(str::to_owned).collect();
                parent.pop();
                parent
            }
            name if self.crates.contains(name) => vec![name.to_owned()],
            name if self.known.contains(&format!("{}::{name}", self.current())) => {
                let mut path: Vec<String> = self.current().split("::").map(str::to_owned).collect();
                path.push(name.to_owned());
                path
            }
            _ => return None,
        };
        let mut rest = segments[1..].iter();
        for segment in rest.by_ref() {
            if segment == "super" {
                path.pop();
            } else {
                path.push(segment.clone());
            }
        }
        Some(path.join("::"))
    }

    /// Every (name, path) a `use` tree names, `prefix` its segments so far.
    fn use_tree(&self, tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<(String, Vec<String>)>) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(&p.tree, prefix, out);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let name = n.ident.to_string();
                let mut path = prefix.clone();
                if name != "self" {
                    path.push(name.clone());
                }
                let name = if name == "self" {
                    prefix.last().cloned().unwrap_or_default()
                } else {
                    name
                };
                out.push((name, path));
            }
            syn::UseTree::Rename(r) => {
                let mut path = prefix.clone();
                path.push(r.ident.to_string());
                out.push((r.rename.to_string(), path));
            }
            syn::UseTree::Glob(_) => out.push(("*".to_owned(), prefix.clone())),
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    self.use_tree(tree, prefix, out);
                }
            }
        }
    }
}

/// Whether `attrs` hold `#[cfg(test)]` (or a `cfg(all(test, …))`).
fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg") && {
            let tokens = attr
                .meta
                .require_list()
                .map(|l| l.tokens.to_string())
                .unwrap_or_default();
            tokens == "test" || tokens.starts_with("all (test")
        }
    })
}

impl<'ast> Visit<'ast> for Reader<'_> {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        let name = format!("{}::{}", self.current(), item.ident);
        let test = is_test(&item.attrs) || self.modules[self.current()].test;
        self.modules.entry(name.clone()).or_default().test |= test;
        if let Some((_, items)) = &item.content {
            self.stack.push(name);
            for item in items {
                self.visit_item(item);
            }
            self.stack.pop();
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        let mut found = Vec::new();
        let mut prefix = Vec::new();
        if item.leading_colon.is_none() {
            self.use_tree(&item.tree, &mut prefix, &mut found);
        }
        let reexport = !matches!(item.vis, syn::Visibility::Inherited);
        let current = self.current().to_owned();
        for (name, segments) in found {
            let Some(path) = self.absolute(&segments) else {
                continue;
            };
            let module = self.modules.get_mut(&current).unwrap();
            if !reexport {
                module.imports.insert(path.clone());
            }
            if name != "*" {
                module.uses.insert(name, path);
            }
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if path.leading_colon.is_none() && segments.len() > 1 {
            if let Some(absolute) = self.absolute(&segments) {
                let current = self.current().to_owned();
                self.modules.get_mut(&current).unwrap().imports.insert(absolute);
            }
        }
        syn::visit::visit_path(self, path);
    }
}

/// The module that defines what `path` names: its longest prefix that is a module, and then,
/// while the next segment is a name a `use` brought into that module, where that `use` points.
fn definer(path: &str, modules: &BTreeMap<String, Module>, seen: &mut BTreeSet<String>) -> Option<String> {
    if !seen.insert(path.to_owned()) {
        return None;
    }
    let segments: Vec<&str> = path.split("::").collect();
    let n = (1..=segments.len())
        .rev()
        .find(|&n| modules.contains_key(&segments[..n].join("::")))?;
    let module = segments[..n].join("::");
    match segments.get(n).and_then(|next| modules[&module].uses.get(*next)) {
        Some(through) => {
            let mut followed = through.clone();
            for rest in &segments[n + 1..] {
                followed.push_str("::");
                followed.push_str(rest);
            }
            definer(&followed, modules, seen).or(Some(module))
        }
        None => Some(module),
    }
}

/// A cycle in `graph`, if any (a depth-first search that reports the first one it meets).
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
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
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

/// Every module of every member, read; and the files, for the per-file rules.
fn read_workspace() -> (BTreeMap<String, Module>, BTreeMap<String, PathBuf>) {
    let members = members();
    let crates: BTreeSet<String> = members.iter().map(|m| m.name.clone()).collect();
    let mut all_files = BTreeMap::new();
    for member in &members {
        files(&member.src, &member.name, &mut all_files);
    }
    let known: BTreeSet<String> = all_files.keys().cloned().collect();
    let mut modules = BTreeMap::new();
    {
        for (module, file) in &all_files {
            let text = std::fs::read_to_string(file).unwrap();
            let parsed = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let parent_is_test = module
                .rsplit_once("::")
                .is_some_and(|(parent, _)| modules.get(parent).is_some_and(|m: &Module| m.test));
            let entry: &mut Module = modules.entry(module.clone()).or_default();
            entry.test |= parent_is_test || module.ends_with("::tests");
            let krate = module.split("::").next().unwrap();
            let mut reader = Reader {
                krate,
                crates: &crates,
                known: &known,
                stack: vec![module.clone()],
                modules: &mut modules,
            };
            reader.visit_file(&parsed);
        }
    }
    (modules, all_files)
}

#[test]
fn every_source_file_says_what_it_owns_and_stays_short() {
    let (_, files) = read_workspace();
    let mut too_long = Vec::new();
    for file in files.values() {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            text.starts_with("//!"),
            "{} must open with a `//!` line saying what it owns",
            file.display()
        );
        let lines = text.lines().count();
        let shown = file.display().to_string();
        match BEING_SPLIT.iter().find(|(name, _)| shown.ends_with(name)) {
            Some((name, issue)) => assert!(
                lines > MAX_LINES,
                "{name} is {lines} lines: take it off BEING_SPLIT ({issue})"
            ),
            None if lines > MAX_LINES => too_long.push(format!("{shown}: {lines} lines")),
            None => {}
        }
    }
    assert!(too_long.is_empty(), "over {MAX_LINES} lines: {too_long:#?}");
    for (name, issue) in BEING_SPLIT {
        assert!(
            files
                .values()
                .any(|file| file.display().to_string().ends_with(name)),
            "{name} is gone: take it off BEING_SPLIT ({issue})"
        );
    }
    // The walk sees every member: the mock's server is a file too.
    assert!(files.contains_key("tower_amazon_auth_mock::server"), "{files:#?}");
}

#[test]
fn no_imports_go_in_circles_within_or_across_crates() {
    let (modules, _) = read_workspace();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, module) in &modules {
        if module.test {
            continue; // nothing imports a test module: it may use anything
        }
        let edges = module
            .imports
            .iter()
            .filter_map(|path| definer(path, &modules, &mut BTreeSet::new()))
            .filter(|to| to != name && !modules[to].test)
            .collect();
        graph.insert(name.clone(), edges);
    }
    if let Some(cycle) = cycle(&graph) {
        panic!("import circle: {}", cycle.join(" -> "));
    }
    // The check sees imports at all, through a re-export and inline paths: the service uses
    // the cache, whose builder is re-exported by `cache/mod.rs`.
    let service = &graph["tower_amazon_auth::service"];
    assert!(service.contains("tower_amazon_auth::cache"), "{graph:#?}");
    assert!(
        graph["tower_amazon_auth::builder"].contains("tower_amazon_auth::cache"),
        "{graph:#?}"
    );
    // And it follows a re-export to the defining file (the root re-exports the cache builder).
    let mut seen = BTreeSet::new();
    assert_eq!(
        definer("tower_amazon_auth::IdentityCacheBuilder", &modules, &mut seen).as_deref(),
        Some("tower_amazon_auth::cache::builder")
    );
}
