//! The command line on bad input: every case exits with code 1 (clap's usage errors: 2),
//! names the file and the problem, never panics, and leaves no partial output file.

use std::path::{Path, PathBuf};
use std::process::Command;

fn incc(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_incc")).args(args).output().expect("run incc");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A fresh path in this process's scratch folder: tests run in parallel, so every call
/// gets its own file (a shared one was read half-written by another test).
fn scratch(name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("incc-cli-{}", std::process::id())).join(n.to_string());
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir.join(name)
}

const TINY: &str = "input 3x8x8\ndefault conv nobias bn relu\nc1: conv 4 3x3\ngap\nflatten\nfc: fc 5\noutput logits\n";

fn tiny() -> PathBuf {
    let p = scratch("tiny.incep");
    std::fs::write(&p, TINY).expect("write");
    p
}

fn weights_for(p: &Path) -> PathBuf {
    let g = incc::frontend::compile_file(p).expect("compiles");
    let w = incc::weights::Weights::init(&g, 3);
    let wp = scratch("tiny.safetensors");
    w.save_safetensors(&wp).expect("save");
    wp
}

/// Runs `args` and checks exit code 1, a message containing every `needles`, and no panic.
fn fails(args: &[&str], needles: &[&str]) {
    let (code, _out, err) = incc(args);
    assert_eq!(code, 1, "{args:?}: exit code {code}\n{err}");
    assert!(!err.contains("panicked"), "{args:?} panicked:\n{err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: expected {n:?} in:\n{err}");
    }
}

#[test]
fn bad_source_files() {
    let empty = scratch("empty.incep");
    std::fs::write(&empty, "").expect("write");
    fails(&["check", empty.to_str().unwrap()], &["empty.incep", "no `input` declaration"]);
    let garbage = scratch("garbage.incep");
    std::fs::write(&garbage, [0x00u8, 0x13, 0x37, b'x', 0x01]).expect("write");
    fails(&["check", garbage.to_str().unwrap()], &["garbage.incep:1:1", "syntax error"]);
    let latin1 = scratch("latin1.incep");
    std::fs::write(&latin1, b"input 3x8x8\n# caf\xe9\n").expect("write");
    fails(&["summary", latin1.to_str().unwrap()], &["latin1.incep", "not valid UTF-8", "line 2"]);
    fails(&["check", "/nonexistent/net.incep"], &["/nonexistent/net.incep", "No such file"]);
    let dir = std::env::temp_dir();
    fails(&["check", dir.to_str().unwrap()], &["is a directory"]);
}

#[test]
fn bad_weights() {
    let net = tiny();
    let good = weights_for(&net);
    let bytes = std::fs::read(&good).expect("read");
    let truncated = scratch("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    fails(&["run", net.to_str().unwrap(), "--weights", truncated.to_str().unwrap()], &["truncated.safetensors"]);
    let lying = scratch("lying.safetensors");
    let mut l = bytes.clone();
    l[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    std::fs::write(&lying, &l).expect("write");
    fails(&["run", net.to_str().unwrap(), "--weights", lying.to_str().unwrap()], &["lying.safetensors"]);
    // The weights of another network: missing, unexpected and mis-shaped tensors are listed.
    let other = scratch("other.incep");
    std::fs::write(&other, TINY.replace("conv 4 3x3", "conv 6 3x3").replace("c1:", "c2:")).expect("write");
    fails(
        &["run", other.to_str().unwrap(), "--weights", good.to_str().unwrap()],
        &["tiny.safetensors", "c2.conv.weight", "c1.conv.weight", "fc.weight"],
    );
    fails(&["run", net.to_str().unwrap(), "--weights", "/nonexistent.safetensors"], &["/nonexistent.safetensors"]);
}

#[test]
fn bad_tensors_and_outputs() {
    let net = tiny();
    let n = net.to_str().unwrap();
    let wrong = scratch("wrong_shape.npy");
    incc::npy::write_npy(&wrong, &[1, 3, 9, 9], &vec![0.0; 243]).expect("write npy");
    fails(&["run", n, "--input", wrong.to_str().unwrap()], &["wrong_shape.npy", "1x3x9x9", "1x3x8x8"]);
    let corrupt = scratch("corrupt.npy");
    std::fs::write(&corrupt, b"\x93NUMPY\x01\x00garbage").expect("write");
    fails(&["run", n, "--input", corrupt.to_str().unwrap(), "--engine", "reference"], &["corrupt.npy"]);
    let f64npy = scratch("ints.npy");
    let mut hdr = b"\x93NUMPY\x01\x00".to_vec();
    let text = "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 3, 8, 8), }";
    let pad = 64 - (10 + text.len() + 1) % 64;
    let header = format!("{text}{}\n", " ".repeat(pad));
    hdr.extend_from_slice(&(header.len() as u16).to_le_bytes());
    hdr.extend_from_slice(header.as_bytes());
    hdr.extend_from_slice(&[0u8; 192 * 4]);
    std::fs::write(&f64npy, hdr).expect("write");
    fails(&["run", n, "--input", f64npy.to_str().unwrap()], &["ints.npy", "<i4"]);
    let out = scratch("no/such/dir/out.npy");
    fails(&["run", n, "--output", out.to_str().unwrap(), "--engine", "reference"], &["out.npy"]);
    assert!(!out.exists());
    // A failed run leaves no partial output file.
    let out2 = scratch("out2.npy");
    let _ = std::fs::remove_file(&out2);
    fails(&["run", n, "--input", wrong.to_str().unwrap(), "--output", out2.to_str().unwrap()], &["wrong_shape.npy"]);
    assert!(!out2.exists(), "a failed run wrote {}", out2.display());
}

#[test]
fn bad_options() {
    let net = tiny();
    let (code, _, err) = incc(&["run", net.to_str().unwrap(), "--threads", "0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--threads"), "{err}");
    fails(
        &["compile", net.to_str().unwrap(), "--disable-pass", "fold-batchnorm"],
        &["fold-batchnorm", "fold-batch-norm"],
    );
    fails(&["compile", net.to_str().unwrap(), "--outputs", "nope"], &["nope", "logits"]);
}

#[test]
fn good_runs_agree_between_engines() {
    let net = tiny();
    let n = net.to_str().unwrap();
    let a = scratch("a.npy");
    let b = scratch("b.npy");
    let (code, _, err) = incc(&["run", n, "--engine", "reference", "--output", a.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = incc(&["run", n, "--engine", "jit", "--output", b.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (sa, va) = incc::npy::read_npy(&a).expect("a");
    let (sb, vb) = incc::npy::read_npy(&b).expect("b");
    assert_eq!(sa, sb);
    let scale = va.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = va.iter().zip(&vb).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(diff <= 1e-4 * scale, "jit vs reference: {diff} of {scale}");
}
