//! Golden tests: every `.incep` under `tests/filetests/<kind>/` is compiled and the result
//! compared with the file beside it.
//!
//! - `errors/NAME.incep` must fail; its rendered diagnostics are `errors/NAME.stderr`.
//! - `lower/NAME.incep` must compile; its printed IR is `lower/NAME.ir`.
//!
//! `INCC_BLESS=1 cargo test --test filetests` rewrites the expectations from what incc
//! produces now; review the diff before committing it.

use std::fs;
use std::path::{Path, PathBuf};

fn cases(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/filetests").join(kind);
    let mut v: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("filetests directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "incep"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no cases in {}", dir.display());
    v
}

/// Compares `found` with the expectation file, or rewrites it when blessing.
fn check(expect_path: &Path, found: &str, failures: &mut Vec<String>) {
    if std::env::var_os("INCC_BLESS").is_some() {
        fs::write(expect_path, found).expect("write expectation");
        return;
    }
    let expected = fs::read_to_string(expect_path).unwrap_or_default();
    if expected != found {
        failures.push(format!(
            "{}: output differs (INCC_BLESS=1 to update)\n--- expected\n{expected}\n--- found\n{found}",
            expect_path.display()
        ));
    }
}

fn run_kind(kind: &str, ext: &str, must_fail: bool) {
    let mut failures = vec![];
    for path in cases(kind) {
        let text = fs::read_to_string(&path).expect("read case");
        let name = format!("tests/filetests/{kind}/{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("?"));
        let found = match (incc::frontend::compile_str(&name, &text), must_fail) {
            (Err(incc::Error::Source(d)), true) => d.render(false),
            (Ok(g), false) => incc::ir::print::print(&g),
            (Ok(_), true) => {
                failures.push(format!("{name}: compiled, but an error was expected"));
                continue;
            }
            (Err(e), _) => {
                failures.push(format!("{name}: unexpected error:\n{e}"));
                continue;
            }
        };
        check(&path.with_extension(ext), &found, &mut failures);
    }
    assert!(failures.is_empty(), "{} golden case(s) failed:\n\n{}", failures.len(), failures.join("\n\n"));
}

#[test]
fn errors() {
    run_kind("errors", "stderr", true);
}

#[test]
fn lower() {
    run_kind("lower", "ir", false);
}
