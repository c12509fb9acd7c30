//! Choosing outputs is what the user asked for, not an optimisation: the same outputs at every
//! level and on both engines, in the order `--outputs` gives, and an unknown name refused
//! everywhere (issue 22, items 1-3).

mod common;
use common::{incc, scratch};
use std::path::{Path, PathBuf};

/// A network with an auxiliary head declared before its main output.
fn net() -> PathBuf {
    let p = scratch("aux.incep");
    std::fs::write(
        &p,
        "input 3x8x8\ndefault conv bias relu\nstem: conv 8 3x3 pad 1\noutput aux1 { gap; flatten; head: fc 3 }\n\
         body: conv 16 3x3 pad 1\ngap\nflatten\nfc: fc 5\noutput logits\n",
    )
    .expect("write");
    p
}

fn shape(p: &Path) -> Vec<usize> {
    incc::npy::read_npy(p).expect("read npy").0
}

/// `run FILE ARGS --output DIR/y.npy`: the files written, by name, with their shapes.
fn run_outputs(file: &Path, args: &[&str]) -> Vec<(String, Vec<usize>)> {
    let dir = scratch("out");
    std::fs::create_dir_all(&dir).expect("dir");
    let y = dir.join("y.npy");
    let mut all = vec!["run", file.to_str().unwrap(), "--output", y.to_str().unwrap()];
    all.extend_from_slice(args);
    let (code, _, err) = incc(&all);
    assert_eq!(code, 0, "{args:?}: {err}");
    let mut files: Vec<(String, Vec<usize>)> = std::fs::read_dir(&dir)
        .expect("list")
        .map(|e| {
            let p = e.expect("entry").path();
            (p.file_name().unwrap().to_string_lossy().into_owned(), shape(&p))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_level_and_engine_computes_the_same_outputs() {
    let f = net();
    let logits_only = vec![("y.npy".to_string(), vec![1, 5])];
    for engine in ["jit", "reference"] {
        for level in ["0", "1", "2"] {
            assert_eq!(run_outputs(&f, &["-O", level, "--engine", engine]), logits_only, "-O{level} {engine}");
            // Choosing outputs works at -O0 too.
            assert_eq!(
                run_outputs(&f, &["-O", level, "--engine", engine, "--outputs", "logits"]),
                logits_only,
                "-O{level} {engine} --outputs logits"
            );
        }
    }
}

#[test]
fn outputs_come_in_the_order_asked() {
    let f = net();
    for engine in ["jit", "reference"] {
        for level in ["0", "2"] {
            let got = run_outputs(&f, &["-O", level, "--engine", engine, "--outputs", "logits,aux1"]);
            assert_eq!(
                got,
                [("y.npy".to_string(), vec![1, 5]), ("y_aux1.npy".to_string(), vec![1, 3])],
                "-O{level} {engine}: the first output asked goes to --output"
            );
            let got = run_outputs(&f, &["-O", level, "--engine", engine, "--outputs", "aux1,logits"]);
            assert_eq!(got, [("y.npy".to_string(), vec![1, 3]), ("y_logits.npy".to_string(), vec![1, 5])]);
        }
    }
    // The C header lists them in that order too.
    let o = scratch("m.o");
    let (code, _, err) = incc(&["compile", f.to_str().unwrap(), "-o", o.to_str().unwrap(), "--outputs", "logits,aux1"]);
    assert_eq!(code, 0, "{err}");
    let h = std::fs::read_to_string(o.with_extension("h")).expect("header");
    let line = h.lines().find(|l| l.starts_with("#define") && l.contains("OUTPUT_NAMES")).expect("OUTPUT_NAMES");
    assert!(line.find("logits") < line.find("aux1"), "{line}");
}

#[test]
fn unknown_or_repeated_outputs_are_refused_on_both_engines() {
    let f = net();
    for engine in ["jit", "reference"] {
        for level in ["0", "2"] {
            let (code, _, err) =
                incc(&["run", f.to_str().unwrap(), "-O", level, "--engine", engine, "--outputs", "nonexist"]);
            assert_eq!(code, 1, "{engine} -O{level}");
            assert!(err.contains("no output named `nonexist`") && err.contains("aux1, logits"), "{err}");
            let (code, _, err) =
                incc(&["run", f.to_str().unwrap(), "-O", level, "--engine", engine, "--outputs", "logits,logits"]);
            assert_eq!(code, 1, "{engine} -O{level}");
            assert!(err.contains("chosen twice"), "{err}");
        }
    }
}
