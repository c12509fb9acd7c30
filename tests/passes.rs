//! Tests of the optimiser (`incc::passes`).
//!
//! - Golden cases: every `tests/filetests/passes/NAME.incep` starts with
//!   `# test passes PASS` (and, optionally, `# outputs A,B`); PASS alone runs on it and the
//!   IR before and after is compared with `NAME.ir`. `INCC_BLESS=1 cargo test --test passes`
//!   rewrites the expectations. Each case is also run on the reference interpreter before
//!   and after the pass.
//! - Numerics: each of the seven architectures at `-O2` on the reference interpreter, before
//!   vs after, within 1e-4 of the largest |value| (`cargo test --release --test passes`).
//! - `pass_statistics` prints what each pass does on each architecture
//!   (`cargo test --test passes pass_statistics -- --nocapture`).

use incc::ir::Graph;
use incc::passes::{Level, PassOptions, PassReport};
use incc::target::{optimize, pass_names};
use incc::weights::Weights;
use std::fs;
use std::path::{Path, PathBuf};

/// Deterministic inputs in [-1, 1) (a 64-bit LCG, Knuth's MMIX constants).
fn input(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

/// Runs the reference interpreter on `g`, with one deterministic input per graph input.
fn run(g: &Graph, w: &Weights) -> Vec<(String, Vec<f32>)> {
    let ins: Vec<Vec<f32>> =
        g.inputs.iter().enumerate().map(|(i, &id)| input(g.node(id).shape.numel(), 7 + i as u64)).collect();
    let refs: Vec<&[f32]> = ins.iter().map(Vec::as_slice).collect();
    incc::reference::run(g, w, &refs).expect("reference run").into_iter().map(|o| (o.name, o.data)).collect()
}

/// Optimises a copy of `g` and checks every kept output against the unoptimised graph.
fn check_numerics(g: &Graph, opts: &PassOptions) -> (Graph, Vec<PassReport>) {
    let w = Weights::init(g, 42);
    let before = run(g, &w);
    let (mut h, mut w2) = (g.clone(), w.clone());
    let report = optimize(&mut h, &mut w2, opts).expect("optimize");
    let after = run(&h, &w2);
    assert!(!after.is_empty(), "{}: no outputs left", g.name);
    for (name, y) in &after {
        let (_, x) = before.iter().find(|(n, _)| n == name).expect("output kept by name");
        let max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = x.iter().zip(y).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        println!("{}: `{name}` worst |difference| {worst:e}, largest |value| {max:e}", g.name);
        assert!(
            worst <= 1e-4 * max.max(1e-30),
            "{}: output `{name}` differs by {worst} (largest |value| {max})",
            g.name
        );
    }
    (h, report)
}

fn only(pass: &str) -> PassOptions {
    PassOptions {
        level: Level::O2,
        disabled: pass_names().into_iter().filter(|p| *p != pass).map(String::from).collect(),
        verify: true,
        outputs: None,
        precision: Default::default(),
    }
}

#[test]
fn golden_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/filetests/passes");
    let mut cases: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("tests/filetests/passes")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "incep"))
        .collect();
    cases.sort();
    assert!(!cases.is_empty());
    let mut failures = vec![];
    for path in cases {
        let text = fs::read_to_string(&path).expect("read case");
        let header = |tag: &str| text.lines().find_map(|l| l.strip_prefix(tag).map(str::trim));
        let pass = header("# test passes ").expect("a `# test passes NAME` line");
        let mut opts = only(pass);
        opts.outputs = header("# outputs ").map(|o| o.split(',').map(|s| s.trim().to_string()).collect());
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("?").to_string();
        let g = incc::frontend::compile_str(&name, &text).expect("case compiles");
        let (h, report) = check_numerics(&g, &opts);
        let found = format!(
            "; before\n{}\n; after {pass}: {} rewrite(s)\n{}",
            incc::ir::print::print(&g),
            report[0].rewrites,
            incc::ir::print::print(&h)
        );
        let expect = path.with_extension("ir");
        if std::env::var_os("INCC_BLESS").is_some() {
            fs::write(&expect, &found).expect("bless");
        } else if fs::read_to_string(&expect).unwrap_or_default() != found {
            failures.push(format!("{name}: IR differs (INCC_BLESS=1 to update)\n--- found\n{found}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn architecture(name: &str) -> Graph {
    incc::frontend::compile_file(Path::new(env!("CARGO_MANIFEST_DIR")).join("architectures").join(name))
        .expect("architecture compiles")
}

macro_rules! o2_matches_reference {
    ($($test:ident: $file:literal,)*) => {$(
        /// The whole pipeline at -O2 keeps every output within 1e-4 of the largest value.
        #[test]
        #[cfg_attr(debug_assertions, ignore = "slow in debug builds: cargo test --release --test passes")]
        fn $test() {
            check_numerics(&architecture($file), &PassOptions::default());
        }
    )*};
}

o2_matches_reference! {
    o2_bn_inception: "bn_inception.incep",
    o2_googlenet: "googlenet.incep",
    o2_googlenet_torchvision: "googlenet_torchvision.incep",
    o2_inception_resnet_v1: "inception_resnet_v1.incep",
    o2_inception_resnet_v2: "inception_resnet_v2.incep",
    o2_inception_v3: "inception_v3.incep",
    o2_inception_v4: "inception_v4.incep",
}

#[test]
fn every_architecture_optimises_and_verifies_at_every_level() {
    for f in ["googlenet.incep", "inception_resnet_v2.incep"] {
        let g = architecture(f);
        let w = Weights::init(&g, 1);
        for level in [Level::O0, Level::O1, Level::O2] {
            let (mut h, mut w2) = (g.clone(), w.clone());
            let opts = PassOptions { level, ..PassOptions::default() };
            let r = optimize(&mut h, &mut w2, &opts).expect("optimize");
            assert_eq!(r.len(), [0, 3, 7][level as usize]);
            w2.check(&h).expect("weights fit the optimised graph");
        }
    }
}

#[test]
fn unknown_pass_is_an_error_listing_the_passes() {
    let mut g = architecture("googlenet.incep");
    let mut w = Weights::init(&g, 1);
    let opts = PassOptions { disabled: vec!["fold-batchnorm".into()], ..PassOptions::default() };
    let e = optimize(&mut g, &mut w, &opts).unwrap_err().to_string();
    assert!(e.contains("unknown pass `fold-batchnorm`") && e.contains("fold-batch-norm, fuse-activation"), "{e}");
}

#[test]
fn outputs_are_chosen_by_name() {
    let g = architecture("googlenet.incep");
    let w = Weights::init(&g, 1);
    let kept = |outputs: Option<Vec<&str>>| {
        let (mut h, mut w2) = (g.clone(), w.clone());
        let opts =
            PassOptions { outputs: outputs.map(|o| o.into_iter().map(String::from).collect()), ..Default::default() };
        optimize(&mut h, &mut w2, &opts).map(|_| h.outputs.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>())
    };
    assert_eq!(kept(None).unwrap(), ["logits"]);
    assert_eq!(kept(Some(vec!["aux2", "logits"])).unwrap(), ["aux2", "logits"]);
    let e = kept(Some(vec!["loss3"])).unwrap_err().to_string();
    assert!(e.contains("no output named `loss3`") && e.contains("aux1, aux2, logits"), "{e}");
    assert_eq!(kept(Some(vec!["logits", "aux2"])).unwrap(), ["logits", "aux2"], "in the order asked");
    // Choosing outputs is not an optimisation: -O0 chooses the same ones (and computes what
    // the others used, unremoved).
    for outputs in [None, Some(vec!["logits".to_string(), "aux1".to_string()])] {
        let (mut h, mut w2) = (g.clone(), w.clone());
        let opts = PassOptions { level: Level::O0, outputs: outputs.clone(), ..Default::default() };
        optimize(&mut h, &mut w2, &opts).expect("-O0 chooses outputs");
        let names: Vec<&str> = h.outputs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, outputs.as_ref().map_or(vec!["logits"], |o| o.iter().map(String::as_str).collect()));
        assert_eq!(h.node_ids().len(), g.node_ids().len(), "-O0 removes nothing");
    }
}

#[test]
fn pass_statistics() {
    let mut files: Vec<_> = fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("architectures"))
        .expect("architectures")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    println!("| network | pass | rewrites | nodes | kernels | activation KiB |");
    println!("|---|---|---:|---|---|---|");
    for f in files {
        let mut g = incc::frontend::compile_file(&f).expect("compiles");
        let mut w = Weights::init(&g, 1);
        for r in optimize(&mut g, &mut w, &PassOptions::default()).expect("optimize") {
            println!(
                "| {} | {} | {} | {} -> {} | {} -> {} | {} -> {} |",
                g.name,
                r.name,
                r.rewrites,
                r.nodes_before,
                r.nodes_after,
                r.kernels_before,
                r.kernels_after,
                r.activation_bytes_before / 1024,
                r.activation_bytes_after / 1024
            );
        }
    }
}
