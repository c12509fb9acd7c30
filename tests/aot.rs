//! `incc compile FILE -o model.o`: the object is linked with `cc` into `examples/c/main.c`
//! (and a small ABI checker), run, and its outputs compared with the JIT's (`incc::Compiler`,
//! one thread) on the same seeded input. Every test prints a note and passes when no C
//! compiler is installed (CI has gcc).

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::incc;

const MINI: &str = "tests/user/mini_inception.incep";
const GOOGLENET: &str = "architectures/googlenet.incep";

/// The C compiler (`$CC`, else `cc`), if it runs.
fn c_compiler() -> Option<String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    match Command::new(&cc).arg("--version").output() {
        Ok(o) if o.status.success() => Some(cc),
        _ => {
            eprintln!("note: no working C compiler (`{cc}`); skipping the AOT object test");
            None
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `incc compile file -o dir/model.o --name model extra...`, then `cc main.c model.o -lm`.
fn build(cc: &str, dir: &Path, file: &str, extra: &[&str], main: &Path) -> PathBuf {
    let obj = dir.join("model.o");
    let obj_s = obj.to_str().expect("utf-8 path");
    let mut args = vec!["compile", file, "-o", obj_s, "--name", "model"];
    args.extend_from_slice(extra);
    let (code, out, err) = incc(&args);
    assert_eq!(code, 0, "incc {args:?} failed:\n{out}{err}");
    assert!(dir.join("model.h").exists(), "no header beside the object");
    let exe = dir.join(main.file_stem().expect("stem"));
    let st = Command::new(cc)
        .args(["-O2", "-Wall", "-Werror", "-I"])
        .arg(dir)
        .arg(main)
        .arg(&obj)
        .args(["-lm", "-o"])
        .arg(&exe)
        .status()
        .expect("run cc");
    assert!(st.success(), "cc {} model.o -lm failed", main.display());
    exe
}

/// Runs the demo with `args`, writing its output to a raw f32 file; returns the floats.
fn run_demo(demo: &Path, args: &[&str]) -> Vec<f32> {
    let out = demo.with_file_name("y.f32");
    let o = Command::new(demo).args(args).arg("--output").arg(&out).output().expect("run demo");
    assert!(o.status.success(), "demo {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::read(&out).expect("demo output");
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// The JIT's outputs on the seeded input, concatenated in output order.
fn jit(file: &str, compiler: incc::Compiler, seed: u64) -> Vec<f32> {
    let c = compiler.threads(1).compile_file(root().join(file)).expect("JIT compiles");
    let n: usize = c.model.inputs().map(|(_, s)| s.numel()).sum();
    let x = incc::weights::random_input(n, seed);
    c.model.run(&x).expect("JIT runs").into_iter().flat_map(|o| o.data).collect()
}

/// max|a - b| <= 1e-5 max|b| (and the same length); prints the measured difference.
fn assert_close(what: &str, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
    let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
    eprintln!("{what}: {} values, max|diff| {diff:e} (max|y| {scale:e}), bit-identical: {same}", a.len());
    assert!(diff <= 1e-5 * scale, "{what}: max|diff| {diff} > 1e-5 * {scale}");
}

fn demo_source() -> PathBuf {
    root().join("examples/c/main.c")
}

#[test]
fn mini_inception_object_matches_the_jit_with_embedded_and_file_weights() {
    let Some(cc) = c_compiler() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    // Real weights: another seed's initialisation, saved as a state_dict.
    let g = incc::frontend::compile_file(root().join(MINI)).expect("compiles");
    let wpath = dir.path().join("w.safetensors");
    incc::weights::Weights::init(&g, 7).save_safetensors(&wpath).expect("save");
    let demo = build(&cc, dir.path(), MINI, &["--weights", wpath.to_str().expect("utf-8")], &demo_source());
    let params = dir.path().join("model.params");
    assert!(params.exists(), "--weights writes model.params");

    let embedded = run_demo(&demo, &["--seed", "3"]);
    assert_close(
        "mini, embedded weights",
        &embedded,
        &jit(MINI, incc::Compiler::new().seed(0).tier(incc::target::TierChoice::Portable), 3),
    );
    let loaded = run_demo(&demo, &["--seed", "3", "--params", params.to_str().expect("utf-8")]);
    assert_close(
        "mini, params file",
        &loaded,
        &jit(MINI, incc::Compiler::new().weights_file(&wpath).tier(incc::target::TierChoice::Portable), 3),
    );
    assert_ne!(embedded, loaded, "the params file must change the weights");

    // A raw input file gives the same as the seed that wrote it.
    let x = incc::weights::random_input(3 * 64 * 64, 3);
    let xpath = dir.path().join("x.f32");
    std::fs::write(&xpath, x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).expect("write input");
    assert_eq!(run_demo(&demo, &["--input", xpath.to_str().expect("utf-8")]), embedded);
}

#[test]
fn googlenet_object_with_three_outputs_matches_the_jit() {
    let Some(cc) = c_compiler() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    // LRN (calls powf) and all three outputs, concatenated.
    let outputs = vec!["aux1".to_string(), "aux2".to_string(), "logits".to_string()];
    let demo = build(&cc, dir.path(), GOOGLENET, &["--outputs", "aux1,aux2,logits"], &demo_source());
    let header = std::fs::read_to_string(dir.path().join("model.h")).expect("header");
    assert!(header.contains("#define model_OUTPUT_LEN 3000\n"), "{header}");
    assert!(header.contains("#define model_OUTPUT_LOGITS_OFFSET 2000\n"), "{header}");
    assert!(header.contains("#define model_INPUT_LEN 150528\n"), "{header}");
    let y = run_demo(&demo, &["--seed", "1"]);
    assert_close("googlenet", &y, &jit(GOOGLENET, incc::Compiler::new().seed(0).outputs(Some(outputs)), 1));
}

/// Exercises the ABI's failure paths: prints one line per check for the test to read.
const ABI_CHECK: &str = r#"
#include <stdio.h>
#include "model.h"
static float x[model_INPUT_LEN], y[model_OUTPUT_LEN];
int main(int argc, char **argv) {
    model_model *m = model_create(NULL);
    if (!m) return 1;
    for (size_t i = 0; i < model_OUTPUT_LEN; i++) y[i] = 42.0f;
    printf("short input %d\n", model_run(m, x, model_INPUT_LEN - 1, y, model_OUTPUT_LEN));
    printf("long input %d\n", model_run(m, x, model_INPUT_LEN + 1, y, model_OUTPUT_LEN));
    printf("short output %d\n", model_run(m, x, model_INPUT_LEN, y, model_OUTPUT_LEN - 1));
    printf("null model %d\n", model_run(NULL, x, model_INPUT_LEN, y, model_OUTPUT_LEN));
    printf("null input %d\n", model_run(m, NULL, model_INPUT_LEN, y, model_OUTPUT_LEN));
    printf("output untouched %d\n", y[0] == 42.0f && y[model_OUTPUT_LEN - 1] == 42.0f);
    printf("ok %d\n", model_run(m, x, model_INPUT_LEN, y, model_OUTPUT_LEN));
    model_destroy(m);
    model_destroy(NULL);
    for (int i = 1; i < argc; i++) {
        model_model *p = model_create(argv[i]);
        printf("create %s %s\n", argv[i], p ? "ok" : "null");
        if (p && model_run(p, x, model_INPUT_LEN, y, model_OUTPUT_LEN) != 0) return 1;
        model_destroy(p);
    }
    return 0;
}
"#;

#[test]
fn abi_reports_length_mismatches_and_refuses_bad_params_files() {
    let Some(cc) = c_compiler() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let g = incc::frontend::compile_file(root().join(MINI)).expect("compiles");
    let wpath = d.join("w.safetensors");
    incc::weights::Weights::init(&g, 5).save_safetensors(&wpath).expect("save");
    let src = d.join("abi_check.c");
    std::fs::write(&src, ABI_CHECK).expect("write C");
    let exe = build(&cc, d, MINI, &["--weights", wpath.to_str().expect("utf-8")], &src);

    let good = std::fs::read(d.join("model.params")).expect("params");
    let mut variants: Vec<(&str, Vec<u8>)> = vec![("good", good.clone())];
    variants.push(("truncated", good[..good.len() - 4].to_vec()));
    variants.push(("trailing", [good.clone(), vec![0]].concat()));
    variants.push(("header_only", good[..32].to_vec()));
    variants.push(("empty", Vec::new()));
    for (name, at) in [("magic", 0), ("version", 8), ("count", 16), ("fingerprint", 24)] {
        let mut v = good.clone();
        v[at] ^= 1;
        variants.push((name, v));
    }
    let mut args = Vec::new();
    for (name, bytes) in &variants {
        let p = d.join(format!("{name}.params"));
        std::fs::write(&p, bytes).expect("write params");
        args.push(p);
    }
    args.push(d.join("missing.params"));
    let out = Command::new(&exe).args(&args).output().expect("run abi check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "abi check failed:\n{text}");
    for line in [
        "short input 1",
        "long input 1",
        "short output 2",
        "null model 3",
        "null input 3",
        "output untouched 1",
        "ok 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
    }
    for p in &args {
        let expect = if p.ends_with("good.params") { "ok" } else { "null" };
        let line = format!("create {} {expect}", p.display());
        assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
    }
}

#[test]
fn compile_to_object_refuses_bad_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let obj = dir.path().join("m.o");
    let obj = obj.to_str().expect("utf-8");
    let cases: [(&[&str], &str); 4] = [
        (&["compile", MINI, "-o", obj, "--name", "3d"], "not a C identifier"),
        (&["compile", MINI, "-o", "/nonexistent-dir/m.o"], "/nonexistent-dir/m.o"),
        (&["compile", MINI, "-o", &format!("{obj}.h")], "another extension"),
        (&["compile", MINI, "-o", obj, "--weights", "missing.safetensors"], "missing.safetensors"),
    ];
    for (args, needle) in cases {
        let (code, _, err) = incc(args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: `{needle}` not in: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let (code, _, err) = incc(&["compile", MINI, "--name", "m"]);
    assert_eq!(code, 2, "--name needs -o: {err}");
}
