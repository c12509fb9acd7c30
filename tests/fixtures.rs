//! PyTorch fixtures: tiny networks whose PyTorch outputs are committed under
//! `tests/fixtures/<case>/` (written by `conformance/make_fixtures.py`, which documents each
//! case). For every case directory this test
//!
//! 1. compiles `net.incep`,
//! 2. loads `weights.safetensors` — the PyTorch module's `state_dict`, unchanged, so this also
//!    proves that the file derives exactly PyTorch's keys and shapes,
//! 3. runs the reference interpreter on `input.npy`, and
//! 4. compares every output with `output_<name>.npy` (or `output.npy` for a network with one
//!    output): shapes must be equal and `max|incc - torch| <= 1e-5 * max(1, max|torch|)`.
//!
//! Adding a case needs no code here: add it to the script and re-run it. The test reports
//! every case (with `--nocapture`, also the ones that pass) and fails listing each failure.

use std::fs;
use std::path::{Path, PathBuf};

/// Relative tolerance: `max|incc - torch| <= TOL * max(1, max|torch|)`.
const TOL: f64 = 1e-5;

fn case_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut dirs: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        // Not a network case: the image preprocessing fixtures of `tests/preprocess.rs`.
        .filter(|p| !p.ends_with("images"))
        .collect();
    dirs.sort();
    dirs
}

/// The measured error of one output.
struct Diff {
    output: String,
    max_diff: f64,
    max_ref: f64,
}

impl Diff {
    fn ok(&self) -> bool {
        self.max_diff <= TOL * self.max_ref.max(1.0)
    }
}

/// Runs one case; `Err` is a failure that prevents comparing (compile error, missing file,
/// shape mismatch, ...).
fn run_case(dir: &Path) -> Result<Vec<Diff>, String> {
    let graph = incc::frontend::compile_file(dir.join("net.incep")).map_err(|e| format!("compile: {e}"))?;
    let weights = incc::weights::Weights::load_safetensors(dir.join("weights.safetensors"), &graph)
        .map_err(|e| format!("weights: {e}"))?;
    let (in_shape, input) = incc::npy::read_npy(dir.join("input.npy")).map_err(|e| format!("input: {e}"))?;
    let expected_in = &graph.node(graph.inputs[0]).shape;
    if in_shape != expected_in.0 {
        return Err(format!("input.npy has shape {in_shape:?}, the network's input is {expected_in}"));
    }
    let outputs = incc::reference::run(&graph, &weights, &[&input]).map_err(|e| format!("run: {e}"))?;

    // Every expectation file must be used: a stale or misnamed one is an error, not skipped.
    let mut unused: Vec<String> = fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("output") && n.ends_with(".npy"))
        .collect();
    let mut diffs = vec![];
    for incc::ir::Output { name, shape, data: got } in &outputs {
        let named = format!("output_{name}.npy");
        let file = if dir.join(&named).exists() || outputs.len() > 1 { named } else { "output.npy".to_string() };
        unused.retain(|n| *n != file);
        let (ref_shape, want) = incc::npy::read_npy(dir.join(&file)).map_err(|e| format!("output `{name}`: {e}"))?;
        if ref_shape != shape.0 {
            return Err(format!("output `{name}`: incc gives shape {shape}, {file} has {ref_shape:?}"));
        }
        let mut max_diff = 0f64;
        for (&a, &b) in got.iter().zip(&want) {
            let d = (a as f64 - b as f64).abs();
            // NaN anywhere is a failure.
            max_diff = if d.is_nan() { f64::INFINITY } else { max_diff.max(d) };
        }
        let max_ref = want.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
        diffs.push(Diff { output: name.clone(), max_diff, max_ref });
    }
    if !unused.is_empty() {
        unused.sort();
        return Err(format!(
            "{} not matched by any output of the network (outputs: {})",
            unused.join(", "),
            outputs.iter().map(|o| o.name.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(diffs)
}

#[test]
fn pytorch_fixtures() {
    let dirs = case_dirs();
    assert!(!dirs.is_empty(), "no fixtures in tests/fixtures (run conformance/make_fixtures.py)");
    let mut report = vec![];
    let mut failures = 0;
    for dir in &dirs {
        let case = dir.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        match run_case(dir) {
            Err(e) => {
                failures += 1;
                report.push(format!("FAIL {case}: {e}"));
            }
            Ok(diffs) => {
                for d in diffs {
                    let rel = d.max_diff / d.max_ref.max(1.0);
                    let status = if d.ok() { "ok  " } else { "FAIL" };
                    failures += usize::from(!d.ok());
                    report.push(format!(
                        "{status} {case:18} {:12} max|diff| {:.3e}  max|torch| {:.3e}  rel {rel:.3e}",
                        d.output, d.max_diff, d.max_ref
                    ));
                }
            }
        }
    }
    let report = report.join("\n");
    eprintln!("{report}");
    assert!(
        failures == 0,
        "{failures} fixture output(s) failed (bound: max|diff| <= {TOL:e} * max(1, max|torch|)):\n{report}"
    );
}
