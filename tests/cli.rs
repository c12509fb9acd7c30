//! The command line on bad input: every case exits with code 1 (clap's usage errors, such
//! as an unknown flag or a value that is not a number, exit with 2), names the file, the
//! location where there is one and the problem, never panics, and leaves no output file
//! (`compile -o`, `export --onnx`, `graph -o`, `compile --write-profile`, `run --output`).
//!
//! The table, by the list: empty file, binary garbage and invalid UTF-8
//! ([`bad_source_files`]); every kind of syntax error, unknown block or layer, wrong argument
//! count, recursive block, zero, negative and huge sizes (every golden case under
//! `tests/filetests/errors/`, through `incc check`, in [`golden_errors_through_the_cli`]; every
//! command on one broken file in [`every_command_reports_source_errors`]); a huge network
//! refused before allocating ([`huge_activations_are_refused`]); safetensors truncated or
//! with a lying header, missing, extra, mis-shaped or wrong-dtype tensors ([`bad_weights`]);
//! `.npy` of the wrong shape or dtype or corrupt ([`bad_tensors_and_outputs`]); `--threads 0`
//! ([`bad_options`]); unwritable output paths and failures after an output path was given
//! ([`no_output_file_on_failure`]); nonexistent files (in each of them).

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{incc, scratch};

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
    assert!(!err.contains("/.tmp"), "{args:?} names a temporary file:\n{err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: expected {n:?} in:\n{err}");
    }
}

/// [`fails`], and none of `outputs` exists afterwards, nor a temporary file beside them.
fn fails_leaving_none(args: &[&str], needles: &[&str], outputs: &[&Path]) {
    fails(args, needles);
    for o in outputs {
        assert!(!o.is_file(), "{args:?} failed but left {}", o.display());
        let Some(dir) = o.parent().filter(|d| d.is_dir()) else { continue };
        for e in std::fs::read_dir(dir).expect("list").flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with(".tmp"), "{args:?} left the temporary file {name} in {}", dir.display());
        }
    }
}

#[test]
fn bad_source_files() {
    let empty = scratch("empty.incep");
    std::fs::write(&empty, "").expect("write");
    fails(&["check", empty.to_str().unwrap()], &["empty.incep:1:1", "no `input` declaration"]);
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

/// Every golden error case, through `incc check`: exit 1 and exactly the expected report
/// (syntax errors of every kind, unknown blocks and layers, argument counts, recursion,
/// zero, negative and huge sizes, ...).
#[test]
fn golden_errors_through_the_cli() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cases: Vec<PathBuf> = std::fs::read_dir(root.join("tests/filetests/errors"))
        .expect("golden errors")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "incep"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 40, "{} golden error cases", cases.len());
    for path in cases {
        let rel = path.strip_prefix(root).expect("under the manifest").to_str().expect("utf-8");
        let out =
            Command::new(env!("CARGO_BIN_EXE_incc")).current_dir(root).args(["check", rel]).output().expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{rel}: {err}");
        assert!(out.stdout.is_empty(), "{rel}: something on stdout");
        let expected = std::fs::read_to_string(path.with_extension("stderr")).expect("expectation");
        assert_eq!(err, expected, "{rel}: the CLI reports what the golden file says");
    }
}

/// Every command that reads a source reports its errors the same way, and writes nothing.
#[test]
fn every_command_reports_source_errors() {
    let bad = scratch("broken.incep");
    std::fs::write(&bad, "input 3x8x8\nc1: conv 4 3x3\np: maxpol 2x2\n").expect("write");
    let b = bad.to_str().unwrap();
    let obj = scratch("broken.o");
    let onnx = scratch("broken.onnx");
    let dot = scratch("broken.dot");
    let yaml = scratch("broken.yaml");
    let npy = scratch("broken.npy");
    let (o, x, d, y, n) = (
        obj.to_str().unwrap(),
        onnx.to_str().unwrap(),
        dot.to_str().unwrap(),
        yaml.to_str().unwrap(),
        npy.to_str().unwrap(),
    );
    let cases: [&[&str]; 13] = [
        &["check", b],
        &["summary", b],
        &["keys", b],
        &["emit", b],
        &["compile", b],
        &["compile", b, "--emit", "opt-ir"],
        &["compile", b, "-o", o],
        &["compile", b, "--write-profile", y],
        &["run", b, "--output", n],
        &["run", b, "--engine", "reference"],
        &["bench", b],
        &["graph", b, "-o", d],
        &["export", b, "--onnx", x],
    ];
    let header = obj.with_extension("h");
    for args in cases {
        fails_leaving_none(
            args,
            &["broken.incep:3:4", "unknown layer `maxpol`", "did you mean `maxpool`?"],
            &[&obj, &header, &onnx, &dot, &yaml, &npy],
        );
    }
}

/// A network whose every tensor is within limits but whose activations together are not
/// is refused before its arena is allocated (it asked for 240 GB and aborted before).
#[test]
fn huge_activations_are_refused() {
    let net = scratch("wide.incep");
    let mut src = String::from("input 1x16384x16384\n");
    for i in 0..12 {
        src.push_str(&format!("output o{i} {{ relu }}\n"));
    }
    src.push_str("relu\noutput last\n");
    std::fs::write(&net, src).expect("write");
    let n = net.to_str().unwrap();
    for tier in ["portable", "auto"] {
        fails(&["compile", n, "-O0", "--tier", tier], &["network `wide` needs", "bytes of activation memory"]);
    }
    let out = scratch("wide.npy");
    fails_leaving_none(&["run", n, "--output", out.to_str().unwrap()], &["activation memory"], &[&out]);
}

/// Named weight tensors, in order.
type Tensors = Vec<(String, incc::weights::Tensor)>;

/// `tensors` (name, dtype, shape, little-endian bytes) as a safetensors file.
fn write_raw(path: &Path, tensors: &[(String, safetensors::Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b).expect("view")))
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).expect("serialize")).expect("write");
}

#[test]
fn bad_weights() {
    let net = tiny();
    let n = net.to_str().unwrap();
    let good = weights_for(&net);
    let bytes = std::fs::read(&good).expect("read");
    let run = |w: &Path, needles: &[&str]| fails(&["run", n, "--weights", w.to_str().unwrap()], needles);

    let truncated = scratch("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    run(&truncated, &["truncated.safetensors", "not a valid safetensors file", "truncated"]);
    let stub = scratch("stub.safetensors");
    std::fs::write(&stub, &bytes[..5]).expect("write");
    run(&stub, &["stub.safetensors", "shorter than the 8-byte header length"]);
    let lying = scratch("lying.safetensors");
    let mut l = bytes.clone();
    l[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    std::fs::write(&lying, &l).expect("write");
    run(&lying, &["lying.safetensors", "header length", "runs past the end of the file"]);
    let not_json = scratch("not_json.safetensors");
    let mut j = bytes.clone();
    j[8..16].copy_from_slice(b"garbage!");
    std::fs::write(&not_json, &j).expect("write");
    run(&not_json, &["not_json.safetensors", "not a safetensors JSON header"]);

    // Tensors that do not fit, one kind at a time.
    let g = incc::frontend::compile_file(&net).expect("compiles");
    let w = incc::weights::Weights::init(&g, 3);
    let variant = |name: &str, edit: &dyn Fn(&mut Tensors)| {
        let mut t: Tensors = w.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        edit(&mut t);
        let mut out = incc::weights::Weights::new();
        for (k, v) in t {
            out.insert(k, v);
        }
        let p = scratch(name);
        out.save_safetensors(&p).expect("save");
        p
    };
    let missing = variant("missing.safetensors", &|t| t.retain(|(k, _)| k != "fc.bias"));
    run(&missing, &["missing.safetensors", "do not fit network", "1 missing tensor:", "`fc.bias` F32 [5]"]);
    let extra = variant("extra.safetensors", &|t| {
        t.push(("head.weight".into(), incc::weights::Tensor { shape: vec![2], data: vec![0.0; 2] }))
    });
    run(&extra, &["extra.safetensors", "1 unexpected tensor:", "`head.weight` F32 [2]"]);
    let misshaped = variant("misshaped.safetensors", &|t| {
        for (k, v) in t.iter_mut() {
            if k == "fc.weight" {
                *v = incc::weights::Tensor { shape: vec![4, 5], data: vec![0.0; 20] };
            }
        }
    });
    run(
        &misshaped,
        &["misshaped.safetensors", "wrong shape or dtype", "`fc.weight`: expected F32 [5, 4], found F32 [4, 5]"],
    );
    let mut raw: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = w
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                safetensors::Dtype::F32,
                v.shape.clone(),
                v.data.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    for t in raw.iter_mut().filter(|t| t.0 == "fc.bias") {
        *t = (t.0.clone(), safetensors::Dtype::I32, vec![5], vec![0; 20]);
    }
    let dtype = scratch("dtype.safetensors");
    write_raw(&dtype, &raw);
    run(&dtype, &["dtype.safetensors", "`fc.bias`: expected F32 [5], found I32 [5]"]);
    // The weights of another network: every difference is listed.
    let other = scratch("other.incep");
    std::fs::write(&other, TINY.replace("conv 4 3x3", "conv 6 3x3").replace("c1:", "c2:")).expect("write");
    fails(
        &["run", other.to_str().unwrap(), "--weights", good.to_str().unwrap()],
        &["tiny.safetensors", "c2.conv.weight", "c1.conv.weight", "fc.weight"],
    );
    run(Path::new("/nonexistent.safetensors"), &["/nonexistent.safetensors", "No such file"]);
    run(&std::env::temp_dir(), &["not a regular file"]);
    // Every command that takes weights refuses them the same way, writing nothing.
    let obj = scratch("weights.o");
    let onnx = scratch("weights.onnx");
    let m = missing.to_str().unwrap();
    fails_leaving_none(
        &["compile", n, "-o", obj.to_str().unwrap(), "--weights", m],
        &["`fc.bias`"],
        &[&obj, &obj.with_extension("h"), &obj.with_extension("params")],
    );
    fails_leaving_none(&["export", n, "--onnx", onnx.to_str().unwrap(), "--weights", m], &["`fc.bias`"], &[&onnx]);
    fails(&["bench", n, "--weights", m], &["`fc.bias`"]);
}

#[test]
fn bad_tensors_and_outputs() {
    let net = tiny();
    let n = net.to_str().unwrap();
    let wrong = scratch("wrong_shape.npy");
    incc::npy::write_npy(&wrong, &[1, 3, 9, 9], &vec![0.0; 243]).expect("write npy");
    for engine in ["jit", "reference"] {
        let w = wrong.to_str().unwrap();
        fails(&["run", n, "--input", w, "--engine", engine], &["wrong_shape.npy", "1x3x9x9", "1x3x8x8"]);
    }
    let corrupt = scratch("corrupt.npy");
    std::fs::write(&corrupt, b"\x93NUMPY\x01\x00garbage").expect("write");
    for engine in ["jit", "reference"] {
        fails(&["run", n, "--input", corrupt.to_str().unwrap(), "--engine", engine], &["corrupt.npy"]);
    }
    let not_npy = scratch("not.npy");
    std::fs::write(&not_npy, TINY).expect("write");
    fails(&["run", n, "--input", not_npy.to_str().unwrap()], &["not.npy"]);
    let ints = scratch("ints.npy");
    let mut hdr = b"\x93NUMPY\x01\x00".to_vec();
    let text = "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 3, 8, 8), }";
    let pad = 64 - (10 + text.len() + 1) % 64;
    let header = format!("{text}{}\n", " ".repeat(pad));
    hdr.extend_from_slice(&(header.len() as u16).to_le_bytes());
    hdr.extend_from_slice(header.as_bytes());
    hdr.extend_from_slice(&[0u8; 192 * 4]);
    std::fs::write(&ints, &hdr).expect("write");
    fails(&["run", n, "--input", ints.to_str().unwrap()], &["ints.npy", "<i4"]);
    let short = scratch("short.npy");
    std::fs::write(&short, &hdr[..hdr.len() - 100]).expect("write");
    fails(&["run", n, "--input", short.to_str().unwrap()], &["short.npy"]);
    fails(&["run", n, "--input", "/nonexistent/x.npy"], &["/nonexistent/x.npy", "No such file"]);
    let out = scratch("no/such/dir/out.npy");
    fails_leaving_none(&["run", n, "--output", out.to_str().unwrap(), "--engine", "reference"], &["out.npy"], &[&out]);
    // A failed run leaves no partial output file.
    let out2 = scratch("out2.npy");
    fails_leaving_none(
        &["run", n, "--input", wrong.to_str().unwrap(), "--output", out2.to_str().unwrap()],
        &["wrong_shape.npy"],
        &[&out2],
    );
}

#[test]
fn bad_options() {
    let net = tiny();
    let n = net.to_str().unwrap();
    for cmd in ["run", "bench", "compile"] {
        fails(&[cmd, n, "--threads", "0"], &["invalid value 0 for --threads", "from 1 to 1024"]);
    }
    fails(&["run", n, "--threads", "1025"], &["invalid value 1025 for --threads"]);
    // Not a number at all: a usage error (clap's exit code 2), naming the flag.
    let (code, _, err) = incc(&["run", n, "--threads", "two"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--threads") && !err.contains("panicked"), "{err}");
    fails(&["compile", n, "--disable-pass", "fold-batchnorm"], &["fold-batchnorm", "fold-batch-norm"]);
    fails(&["compile", n, "--outputs", "nope"], &["nope", "logits"]);
    fails(&["compile", n, "--profile-file", "/nonexistent/p.yaml"], &["/nonexistent/p.yaml", "No such file"]);
    // Precision: f64 is the reference engine's; a C object is f32.
    fails(&["compile", n, "--precision", "f64"], &["--precision f64 is the reference engine's"]);
    fails(&["run", n, "--precision", "f64"], &["--precision f64 needs --engine reference"]);
    let o = std::env::temp_dir().join(format!("incc-bf16-{}.o", std::process::id()));
    fails(&["compile", n, "-o", o.to_str().unwrap(), "--precision", "bf16"], &["does not apply to a C object"]);
    assert!(!o.exists());
}

/// Outputs that cannot be written, and failures after an output path was given: exit 1
/// naming the path, and no file (complete, partial or temporary) left behind.
#[test]
fn no_output_file_on_failure() {
    let net = tiny();
    let n = net.to_str().unwrap();
    // A missing directory, and a path that is a directory.
    for (what, target) in [("nodir", scratch("no/such/dir/out")), ("isdir", scratch("taken"))] {
        if what == "isdir" {
            std::fs::create_dir_all(&target).expect("mkdir");
        }
        let t = target.to_str().unwrap();
        let why = if what == "nodir" { "No such file" } else { "directory" };
        let cases: [&[&str]; 5] = [
            &["compile", n, "-o", t],
            &["export", n, "--onnx", t],
            &["graph", n, "-o", t],
            &["compile", n, "--write-profile", t],
            &["run", n, "--output", t],
        ];
        for args in cases {
            fails_leaving_none(args, &[t, why], &[&target, &target.with_extension("h")]);
        }
    }
    // compile -o: the header cannot be written (a directory has its name), so the object
    // that could be is not left without it.
    let obj = scratch("m.o");
    std::fs::create_dir_all(obj.with_extension("h")).expect("mkdir");
    fails_leaving_none(&["compile", n, "-o", obj.to_str().unwrap()], &["m.h"], &[&obj]);
    // run --output: the second output's file cannot be written, so the first is removed.
    let two = scratch("two.incep");
    std::fs::write(&two, "input 3x8x8\nc1: conv 4 3x3\noutput a\nfc1: { gap; flatten; fc 3 }\noutput b\n")
        .expect("write");
    let first = scratch("out.npy");
    std::fs::create_dir_all(first.with_file_name("out_b.npy")).expect("mkdir");
    fails_leaving_none(
        &["run", two.to_str().unwrap(), "--output", first.to_str().unwrap()],
        &["out_b.npy", "directory"],
        &[&first],
    );
    // --write-profile with a network that does not compile: no profile.
    let broken = scratch("broken.incep");
    std::fs::write(&broken, "input 3x8x8\nc: conv 4 9x9\n").expect("write");
    let prof = scratch("p.yaml");
    fails_leaving_none(
        &["compile", broken.to_str().unwrap(), "--write-profile", prof.to_str().unwrap()],
        &["broken.incep:2"],
        &[&prof],
    );
    // export of a network ONNX cannot express, and graph -O of a broken file.
    let onnx = scratch("x.onnx");
    fails_leaving_none(
        &["export", n, "--onnx", onnx.to_str().unwrap(), "--outputs", "nope"],
        &["no output named `nope`"],
        &[&onnx],
    );
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

/// Output into a closed pipe (`incc keys FILE | head -1`) ends incc quietly, without a panic.
#[test]
fn a_closed_stdout_is_no_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for cmd in ["keys", "summary", "emit"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_incc"))
            .current_dir(root)
            .args([cmd, "architectures/inception_resnet_v2.incep"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run incc");
        // Closing the reading end before incc has parsed the file: its first write fails.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{cmd}: {err}");
        assert_ne!(out.status.code(), Some(101), "{cmd}: {err}");
    }
}

/// `--tier` takes the names `auto`, `avx512`, `avx2`, `portable` (what `--help` lists) and
/// `wide`, the former name of `avx512`, which means exactly what `avx512` means: the same
/// effective profile, and the same compilation and outputs (or, on a CPU without AVX-512F,
/// the same error naming the ISA).
#[test]
fn tier_names_and_the_wide_alias() {
    let net = tiny();
    let n = net.to_str().unwrap();
    let profile = |tier: &str| {
        let out = scratch("tier.yaml");
        let (code, _, err) = incc(&["compile", "--tier", tier, "--write-profile", out.to_str().unwrap()]);
        assert_eq!(code, 0, "--tier {tier}: {err}");
        std::fs::read_to_string(&out).expect("profile written")
    };
    for tier in ["auto", "avx512", "avx2", "portable"] {
        assert!(profile(tier).contains(&format!("\ntier: {tier}\n")), "--tier {tier}");
    }
    assert_eq!(profile("wide"), profile("avx512"));
    // The same run: outputs and report, or the same error.
    let run = |tier: &str| {
        let out = scratch("y.npy");
        let (code, _, err) = incc(&["run", n, "--threads", "1", "--tier", tier, "--output", out.to_str().unwrap()]);
        let report = incc(&["compile", n, "--threads", "1", "--tier", tier, "--format", "json"]);
        (code, err.replace(out.to_str().unwrap(), "OUT"), std::fs::read(&out).ok(), report.0, report.2)
    };
    let (avx512, wide) = (run("avx512"), run("wide"));
    assert_eq!(avx512, wide);
    if incc::target::TierChoice::Avx512.resolve().is_ok() {
        assert_eq!(avx512.0, 0, "{}", avx512.1);
        let (_, json, _) = incc(&["compile", n, "--tier", "wide", "--format", "json"]);
        let report: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(report["tier"], "avx512");
    } else {
        fails(&["run", n, "--tier", "wide"], &["avx512 tier needs", "AVX-512F"]);
    }
    // `--help` names avx512, not its alias.
    let (code, help, _) = incc(&["compile", "--help"]);
    assert_eq!(code, 0);
    assert!(help.contains("- avx512:") && help.contains("- portable:") && !help.contains("- wide"), "{help}");
    let (_, short, _) = incc(&["compile", "-h"]);
    assert!(short.contains("[possible values: auto, avx512, avx2, portable]"), "{short}");
}

/// An unknown tier is a usage error (exit 2) that names it and lists the valid names; the
/// same name in a profile is exit 1 with the file, line and column and the same list.
#[test]
fn unknown_tier_lists_the_names() {
    let net = tiny();
    let n = net.to_str().unwrap();
    for cmd in ["compile", "run", "bench", "emit"] {
        let (code, _, err) = incc(&[cmd, n, "--tier", "avx-512"]);
        assert_eq!(code, 2, "{cmd}: {err}");
        assert!(err.contains("'avx-512'") && err.contains("--tier"), "{cmd}: {err}");
        assert!(err.contains("[possible values: auto, avx512, avx2, portable]"), "{cmd}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let p = scratch("bad-tier.yaml");
    std::fs::write(&p, "opt_level: 1\ntier: AVX512\n").expect("write");
    fails(
        &["compile", n, "--profile-file", p.to_str().unwrap()],
        &["bad-tier.yaml:2:7", "unknown tier `AVX512`", "auto, avx512, avx2, portable"],
    );
}

/// An error the library reports with its file alone is prefixed with what the command was
/// doing, once: `error: writing the ONNX model: /nonexistent/x.onnx: No such file ...`.
#[test]
fn errors_say_what_the_command_was_doing() {
    let net = tiny();
    let n = net.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["export", n, "--onnx", "/nonexistent/x.onnx"], "error: writing the ONNX model: /nonexistent/x.onnx: "),
        (&["run", n, "--output", "/nonexistent/y.npy"], "error: writing output `logits`: /nonexistent/y.npy: "),
        (&["run", n, "--input", "/nonexistent/x.npy"], "error: reading the input tensor: /nonexistent/x.npy: "),
        (&["graph", n, "-o", "/nonexistent/g.dot"], "error: writing the drawing: /nonexistent/g.dot: "),
        (
            &["compile", n, "--profile-file", "/nonexistent/p.yaml"],
            "error: reading the compile profile: /nonexistent/p.yaml: ",
        ),
    ];
    for (args, prefix) in cases {
        fails(args, &[prefix, "No such file"]);
        let (_, _, err) = incc(args);
        assert_eq!(err.lines().count(), 1, "{args:?}: one line:\n{err}");
    }
}
