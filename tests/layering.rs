//! The import graph of `lab/src` has no circle, file by file and folder by
//! folder: commands → `Lab` → domains → plan core → shell, docker, wait,
//! progress, state. An edge is a `crate::`
//! or `super::` path from one file's module to another's (a module naming
//! its own children is ownership, not a dependency); tests and comments do
//! not count. A circle fails with the files on it, in order.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

/// Every file's module path: `plan/step.rs` is `plan::step`, `plan/mod.rs` is `plan`.
fn modules(root: &Path) -> BTreeMap<Module, PathBuf> {
    let mut out = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(root).unwrap().with_extension("");
                let mut module: Module = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
                if matches!(module.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                    module.pop();
                }
                out.insert(module, path);
            }
        }
    }
    out
}

/// The source without comments and without the trailing `#[cfg(test)] mod tests`.
fn code(source: &str) -> String {
    let source = match source.find("#[cfg(test)]\nmod tests") {
        Some(at) => &source[..at],
        None => source,
    };
    source
        .lines()
        .map(|line| match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `use crate::{a, b::{c, d}}` as the paths `crate::a`, `crate::b` (the part before a group is enough).
fn grouped_paths(code: &str) -> Vec<String> {
    let opening = regex::Regex::new(r"use ((?:crate|super)(?:::super)*)::\{").unwrap();
    let mut out = Vec::new();
    for found in opening.captures_iter(code) {
        let prefix = &found[1];
        let start = found.get(0).unwrap().end();
        let (mut depth, mut item) = (1, String::new());
        for c in code[start..].chars() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if depth == 0 || (depth == 1 && c == ',') {
                out.push(format!("{prefix}::{}", item.split("::{").next().unwrap().trim()));
                item.clear();
                if depth == 0 {
                    break;
                }
            } else {
                item.push(c);
            }
        }
    }
    out
}

/// The modules a file's code refers to by `crate::` or `super::` paths.
fn references(module: &Module, code: &str, modules: &BTreeMap<Module, PathBuf>) -> BTreeSet<Module> {
    let path = regex::Regex::new(r"\b(crate|super(?:::super)*)((?:::\w+)+)").unwrap();
    let mut paths: Vec<String> = path.find_iter(code).map(|m| m.as_str().to_string()).collect();
    paths.extend(grouped_paths(code));
    let mut out = BTreeSet::new();
    for text in paths {
        let mut words = text.split("::").filter(|w| !w.is_empty()).peekable();
        let mut absolute: Module = if words.peek() == Some(&"crate") {
            words.next();
            Vec::new()
        } else {
            let mut base = module.clone();
            while words.peek() == Some(&"super") {
                words.next();
                base.pop();
            }
            base
        };
        absolute.extend(words.map(str::to_string));
        while !absolute.is_empty() && !modules.contains_key(&absolute) {
            absolute.pop();
        }
        if &absolute != module {
            out.insert(absolute);
        }
    }
    out
}

/// A circle through the graph, if there is one.
fn find_circle(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        at: &Module,
        edges: &BTreeMap<Module, BTreeSet<Module>>,
        marks: &mut BTreeMap<Module, Mark>,
        trail: &mut Vec<Module>,
    ) -> Option<Vec<Module>> {
        marks.insert(at.clone(), Mark::Open);
        trail.push(at.clone());
        for next in edges.get(at).into_iter().flatten() {
            match marks.get(next) {
                Some(Mark::Open) => {
                    let from = trail.iter().position(|m| m == next).unwrap();
                    let mut circle = trail[from..].to_vec();
                    circle.push(next.clone());
                    return Some(circle);
                }
                Some(Mark::Done) => {}
                None => {
                    if let Some(circle) = visit(next, edges, marks, trail) {
                        return Some(circle);
                    }
                }
            }
        }
        trail.pop();
        marks.insert(at.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for start in edges.keys() {
        if !marks.contains_key(start)
            && let Some(circle) = visit(start, edges, &mut marks, &mut Vec::new())
        {
            return Some(circle);
        }
    }
    None
}

fn name(module: &Module) -> String {
    if module.is_empty() { "lib".into() } else { module.join("::") }
}

fn graph(root: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let modules = modules(root);
    modules
        .iter()
        .map(|(module, path)| {
            let source = std::fs::read_to_string(path).unwrap();
            (module.clone(), references(module, &code(&source), &modules))
        })
        .collect()
}

#[test]
fn the_import_graph_of_lab_src_has_no_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = graph(&root);
    assert!(edges.len() > 50, "read only {} files under {}", edges.len(), root.display());
    if let Some(circle) = find_circle(&edges) {
        panic!("a circle in lab/src's imports: {}", circle.iter().map(name).collect::<Vec<_>>().join(" → "));
    }
}

/// The same, a folder at a time: `provider/…` → `load/…` → `prepare/…` →
/// `provider/…` is a circle between folders though no file imports itself.
#[test]
fn the_folders_of_lab_src_import_each_other_in_one_direction() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let folder = |m: &Module| -> Module { m.first().cloned().into_iter().collect() };
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, uses) in graph(&root) {
        let from = folder(&module);
        let to: BTreeSet<Module> = uses.iter().map(folder).filter(|f| *f != from).collect();
        edges.entry(from).or_default().extend(to);
    }
    assert!(edges.len() > 10, "read only {} folders under {}", edges.len(), root.display());
    if let Some(circle) = find_circle(&edges) {
        panic!("a circle between lab/src's folders: {}", circle.iter().map(name).collect::<Vec<_>>().join(" → "));
    }
}

#[test]
fn the_plan_core_names_no_domain() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = graph(&root);
    let domains = ["provider", "prepare", "build", "load", "stack", "suite", "fio", "commands", "scenario"];
    for (module, uses) in edges.iter().filter(|(m, _)| m.first().is_some_and(|m| m == "plan")) {
        for used in uses {
            assert!(
                !used.first().is_some_and(|u| domains.contains(&u.as_str())) && !used.is_empty(),
                "{} uses {}: the plan core must not know the domains above it",
                name(module),
                name(used)
            );
        }
    }
}

#[test]
fn the_checker_finds_a_circle_it_is_shown() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("a")).unwrap();
    std::fs::write(dir.path().join("lib.rs"), "mod a;\nmod b;\n").unwrap();
    std::fs::write(dir.path().join("a/mod.rs"), "use crate::b::Thing; // crate::c is a comment\n").unwrap();
    std::fs::write(dir.path().join("a/x.rs"), "fn f() { super::super::b::g() }\n").unwrap();
    std::fs::write(dir.path().join("b.rs"), "use crate::{a::x, c};\n").unwrap();
    let edges = graph(dir.path());
    assert_eq!(edges[&vec!["a".to_string()]], BTreeSet::from([vec!["b".to_string()]]));
    assert_eq!(edges[&vec!["a".to_string(), "x".to_string()]], BTreeSet::from([vec!["b".to_string()]]));
    let circle = find_circle(&edges).expect("a → b → a::x → b is a circle");
    assert_eq!(circle.iter().map(name).collect::<Vec<_>>(), ["b", "a::x", "b"]);
}
