//! The library's layers, checked on its source: imports point down only, and the domain
//! modules' import graph has no circle.
//!
//! Layers, bottom up (see `src/lib.rs`):
//! 1. generated Velero types (`src/velero/*.rs` made by `scripts/gen-velero-types`),
//! 2. the domain modules (everything else outside `commands/` and `output.rs`),
//! 3. the output module (`src/output.rs`),
//! 4. the commands (`src/commands/`).
//!
//! A module's tests may reach up (e.g. to check how an error reads to the user), so only
//! the code before a file's first `#[cfg(test)]` counts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable src dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `velero/backup.rs` → "velero", `commands/restore/mod.rs` → "commands", `lib.rs` → "".
fn top_module(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").replace("lib", "")
}

fn is_generated(text: &str) -> bool {
    text.starts_with("// @generated")
}

fn layer(rel: &Path, text: &str) -> u8 {
    match top_module(rel).as_str() {
        "velero" if is_generated(text) => 1,
        "output" => 3,
        "commands" => 4,
        _ => 2,
    }
}

/// The non-test code of a file, without comments (docs may link anywhere).
fn code(text: &str) -> String {
    let code = text.find("#[cfg(test)]").map_or(text, |i| &text[..i]);
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Top-level modules named as `crate::<name>` in `text`.
fn references(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

struct Tree {
    /// File (relative to src) → its layer, top module and references.
    files: Vec<(PathBuf, u8, String, BTreeSet<String>)>,
    /// Layer of each top module (the highest of its files).
    module_layer: BTreeMap<String, u8>,
}

fn tree() -> Tree {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    sources(&src, &mut paths);
    let mut files = Vec::new();
    let mut module_layer = BTreeMap::new();
    for path in paths {
        let rel = path.strip_prefix(&src).unwrap().to_path_buf();
        let text = std::fs::read_to_string(&path).unwrap();
        let top = top_module(&rel);
        if top.is_empty() {
            continue;
        }
        let layer = layer(&rel, &text);
        let entry = module_layer.entry(top.clone()).or_insert(layer);
        *entry = (*entry).max(layer);
        files.push((rel, layer, top, references(&code(&text))));
    }
    Tree {
        files,
        module_layer,
    }
}

#[test]
fn imports_point_down_only() {
    let t = tree();
    let mut wrong = Vec::new();
    for (rel, layer, top, refs) in &t.files {
        for r in refs {
            if r == top {
                continue;
            }
            // A generated type file may use only other Velero types.
            let target = if *layer == 1 {
                2
            } else {
                t.module_layer.get(r).copied().unwrap_or(2)
            };
            if target > *layer || (*layer == 1 && r != "velero") {
                wrong.push(format!(
                    "{} (layer {layer}) uses crate::{r} (layer {target})",
                    rel.display()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports must point down:\n{}",
        wrong.join("\n")
    );
    // The check sees the layers at all.
    assert_eq!(t.module_layer.get("commands"), Some(&4));
    assert_eq!(t.module_layer.get("output"), Some(&3));
    assert!(
        t.files.iter().any(|(_, l, _, _)| *l == 1),
        "generated Velero types found"
    );
}

#[test]
fn domain_modules_import_no_circle() {
    let t = tree();
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (_, layer, top, refs) in &t.files {
        if *layer != 2 {
            continue;
        }
        let edges = graph.entry(top.as_str()).or_default();
        for r in refs {
            if r != top && t.module_layer.get(r) == Some(&2) {
                edges.insert(r.as_str());
            }
        }
    }
    // Depth-first search; a grey node reached again closes a circle.
    fn visit<'a>(
        n: &'a str,
        graph: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        state: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<&'a str>> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let start = path.iter().position(|p| *p == n).unwrap();
                let mut circle = path[start..].to_vec();
                circle.push(n);
                return Some(circle);
            }
            _ => {}
        }
        state.insert(n, 1);
        path.push(n);
        for next in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(next, graph, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(n, 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if let Some(circle) = visit(n, &graph, &mut state, &mut Vec::new()) {
            panic!(
                "import circle among domain modules: {}",
                circle.join(" -> ")
            );
        }
    }
    assert!(
        graph.len() > 10,
        "the domain modules were found: {:?}",
        graph.keys()
    );
}
