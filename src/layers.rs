//! A test that keeps the modules free of import cycles: every path through
//! `crate::` or `super::` in the source (outside test modules) is an edge
//! from the module that names it to the module it names; the rooms (the
//! top-level modules, and each module of `app/` and `keys/`) must form no
//! cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every module of the crate, by path (`app::recovery::session`), with its
/// source up to its test module.
fn modules() -> BTreeMap<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(&root).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] || parts == ["layers"] {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("").to_owned();
            out.insert(parts.join("::"), code);
        }
    }
    out
}

/// The module a path names: the longest prefix of it that is a module.
fn resolve(names: &BTreeSet<String>, from: &str, path: &str) -> Option<String> {
    let mut segs: Vec<&str> = path.split("::").collect();
    let mut base: Vec<&str> = from.split("::").collect();
    if segs[0] == "crate" {
        segs.remove(0);
        base.clear();
    } else {
        while segs.first() == Some(&"super") {
            segs.remove(0);
            base.pop();
        }
    }
    let full: Vec<&str> = base.into_iter().chain(segs).collect();
    (1..=full.len())
        .rev()
        .map(|i| full[..i].join("::"))
        .find(|m| names.contains(m))
}

/// The room a module belongs to.
fn room(m: &str) -> String {
    let parts: Vec<&str> = m.split("::").collect();
    match parts.as_slice() {
        ["app" | "keys", sub, ..] => format!("{}::{sub}", parts[0]),
        [top, ..] => (*top).to_owned(),
        [] => String::new(),
    }
}

#[test]
fn the_rooms_have_no_import_cycle() {
    let mods = modules();
    let names: BTreeSet<String> = mods.keys().cloned().collect();
    let path = regex::Regex::new(r"\b((?:crate|super)(?:::[A-Za-z_][A-Za-z0-9_]*)+)").unwrap();
    let group =
        regex::Regex::new(r"\b((?:crate|super)(?:::[a-z_][a-z0-9_]*)*)::\{([^}]*)\}").unwrap();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, code) in &mods {
        let mut named: Vec<String> = path.captures_iter(code).map(|c| c[1].to_owned()).collect();
        for c in group.captures_iter(code) {
            for item in c[2].split(',') {
                let item = item.trim().split("::").next().unwrap_or("");
                if item.starts_with(|ch: char| ch.is_ascii_lowercase()) {
                    named.push(format!("{}::{item}", &c[1]));
                }
            }
        }
        let (from, nested) = (room(m), |a: &str, b: &str| a.starts_with(&format!("{b}::")));
        for p in named {
            let Some(to) = resolve(&names, m, &p) else {
                continue;
            };
            let to = room(&to);
            if to != from && !nested(&from, &to) && !nested(&to, &from) {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    // A cycle is a room that reaches itself.
    for start in edges.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
        while let Some((at, trail)) = stack.pop() {
            for next in edges.get(&at).into_iter().flatten() {
                if next == start {
                    panic!("an import cycle: {} -> {start}", trail.join(" -> "));
                }
                if seen.insert(next.clone()) {
                    let mut t = trail.clone();
                    t.push(next.clone());
                    stack.push((next.clone(), t));
                }
            }
        }
    }
}
