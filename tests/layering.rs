//! The library's layers depend in one direction (README, "Layout"): each top-level module
//! refers only to modules of a lower rank (or its own), and inside each folder the
//! submodules form no cycle. Read from the source: every `crate::a::b` and `super::b` path
//! outside comments counts, in `use` lines and in code alike.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Ranks of the top-level modules, lowest first, as `(layer, [modules])`. A module may refer
/// only to modules of a strictly lower rank; the modules of one row are independent.
const LAYERS: &[(&str, &[&str])] = &[
    ("diagnostics", &["diag"]),
    ("errors", &["error"]),
    ("base", &["npy", "cpu"]),
    ("ir and syntax", &["ir", "syntax"]),
    ("front end and weights", &["lower", "weights"]),
    ("front end entry", &["frontend"]),
    ("semantic passes and the oracle", &["passes", "reference"]),
    ("target", &["target"]),
    ("execution", &["exec"]),
    ("pipeline", &["driver"]),
    ("ahead-of-time objects", &["aot"]),
    ("tools", &["export", "summary", "preprocess", "profile"]),
    ("drawing", &["graphviz"]),
];

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&module))
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file with comments (line, doc and block) and string literals removed.
fn code(text: &str) -> String {
    let (b, mut out, mut i) = (text.as_bytes(), String::new(), 0);
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'"' && (i == 0 || b[i - 1] != b'\'') {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// The identifiers that follow each occurrence of `prefix` (`crate::` -> `ir`, ...), with
/// the rest of the path: `crate::target::plan::Slot` gives `["target", "plan", "Slot"]`.
fn paths<'a>(code: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    let mut found = vec![];
    let mut at = 0;
    while let Some(k) = code[at..].find(prefix) {
        let start = at + k;
        let before = code[..start].chars().last();
        at = start + prefix.len();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[at..];
        let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
        found.push(rest[..end].split("::").filter(|s| !s.is_empty()).collect());
    }
    found
}

/// `src/a/b/c.rs` -> `["a", "b", "c"]`, `src/a/mod.rs` -> `["a"]`, `src/a.rs` -> `["a"]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel.iter().map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string()).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The references of every library file: (its module path, referenced absolute paths).
fn references() -> Vec<(Vec<String>, Vec<Vec<String>>)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    sources(&src, &mut files);
    files.sort();
    let mut out = vec![];
    for f in files {
        let m = module_of(&src, &f);
        if m.len() == 1 && (m[0] == "main" || m[0] == "lib") || m.first().is_some_and(|s| s == "cli") {
            continue; // the binary sits on top; lib.rs only declares and re-exports
        }
        let text = std::fs::read_to_string(&f).expect("read");
        let code = code(&text);
        let mut refs: Vec<Vec<String>> =
            paths(&code, "crate::").into_iter().map(|p| p.into_iter().map(String::from).collect()).collect();
        // `super::x` (possibly `super::super::x`) resolved against the file's module.
        for p in paths(&code, "super::") {
            let mut base = m.clone();
            base.pop();
            let mut p = p.as_slice();
            while p.first() == Some(&"super") {
                base.pop();
                p = &p[1..];
            }
            base.extend(p.iter().map(|s| s.to_string()));
            refs.push(base);
        }
        out.push((m, refs));
    }
    out
}

/// Violations of the top-level ranks, as `file module -> referenced module`.
fn upward(refs: &[(Vec<String>, Vec<Vec<String>>)]) -> Vec<String> {
    let mut bad = BTreeSet::new();
    for (m, rs) in refs {
        let Some(from) = rank(&m[0]) else {
            bad.insert(format!("`{}` has no layer in tests/layering.rs", m[0]));
            continue;
        };
        for r in rs {
            let Some(to) = r.first() else { continue };
            if *to == m[0] {
                continue;
            }
            match rank(to) {
                Some(t) if t < from => {}
                Some(_) => {
                    bad.insert(format!(
                        "{} ({}) refers to crate::{} ({})",
                        m.join("::"),
                        LAYERS[from].0,
                        r.join("::"),
                        LAYERS[rank(to).unwrap_or(0)].0
                    ));
                }
                None => {} // an item of lib.rs itself (re-exports), not a module
            }
        }
    }
    bad.into_iter().collect()
}

/// Cycles among the submodules of each top-level folder (`target::plan` <-> `target::mem`).
fn cycles(refs: &[(Vec<String>, Vec<Vec<String>>)]) -> Vec<String> {
    let mut edges: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let submodules: BTreeSet<(String, String)> =
        refs.iter().filter(|(m, _)| m.len() >= 2).map(|(m, _)| (m[0].clone(), m[1].clone())).collect();
    for (m, rs) in refs {
        if m.len() < 2 {
            continue;
        }
        for r in rs {
            if r.len() >= 2 && r[0] == m[0] && r[1] != m[1] && submodules.contains(&(r[0].clone(), r[1].clone())) {
                edges.entry((m[0].clone(), m[1].clone())).or_default().insert(r[1].clone());
            }
        }
    }
    let mut found = BTreeSet::new();
    for (top, sub) in &submodules {
        // Depth-first search for a path back to `sub`.
        let mut stack = vec![(sub.clone(), vec![sub.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((at, path)) = stack.pop() {
            for next in edges.get(&(top.clone(), at.clone())).into_iter().flatten() {
                if next == sub {
                    let mut cycle = path.clone();
                    let i = (0..cycle.len()).min_by_key(|&i| &cycle[i]).unwrap_or(0);
                    cycle.rotate_left(i);
                    found.insert(format!("{top}: {} -> {}", cycle.join(" -> "), cycle[0]));
                } else if seen.insert(next.clone()) {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push((next.clone(), p));
                }
            }
        }
    }
    found.into_iter().collect()
}

#[test]
fn layers_depend_in_one_direction() {
    let bad = upward(&references());
    assert!(bad.is_empty(), "upward references (see README, Layout):\n  {}", bad.join("\n  "));
}

#[test]
fn no_module_cycles_inside_a_folder() {
    let bad = cycles(&references());
    assert!(bad.is_empty(), "module cycles:\n  {}", bad.join("\n  "));
}

/// The checker itself catches what it is for: an upward `use`, one in code, a cycle; and it
/// ignores comments and strings.
#[test]
fn the_checker_sees_an_upward_import_and_a_cycle() {
    let file = |m: &[&str], text: &str| {
        let c = code(text);
        let rs = paths(&c, "crate::").into_iter().map(|p| p.into_iter().map(String::from).collect()).collect();
        (m.iter().map(|s| s.to_string()).collect::<Vec<_>>(), rs)
    };
    let ir_uses_target = file(&["ir", "graph"], "use crate::target::plan::Slot;\n");
    assert_eq!(upward(&[ir_uses_target]).len(), 1);
    let in_code = file(&["passes"], "fn f() { crate::exec::pool::threads(); }");
    assert_eq!(upward(&[in_code]).len(), 1);
    let in_comments =
        file(&["ir"], "// crate::target\n/// [`crate::exec::Model`]\n/* crate::driver */ let s = \"crate::aot\";");
    assert!(upward(&[in_comments]).is_empty());
    let downward = file(&["target", "plan"], "use crate::ir::Graph; use crate::passes::Level;");
    assert!(upward(&[downward]).is_empty());
    let a = file(&["target", "plan"], "use crate::target::mem::Line;");
    let b = file(&["target", "mem"], "use crate::target::plan::Slot;");
    assert_eq!(cycles(&[a, b]), ["target: mem -> plan -> mem"]);
}
