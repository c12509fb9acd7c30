//! Benchmarks: GFLOP/s of large convolutions on one thread (vs the 47.5 GFLOP/s f32x4 peak
//! of one core here) and end-to-end latency of every architecture with 1 and 2 threads.
//! Medians. Run: `cargo run --release --example bench_conv [-- convs|nets]`.

use incc::exec::JitOptions;
use incc::exec::Model;
use incc::ir::{Conv2d, Epilogue, Graph, Op, Pad, Shape};
use incc::weights::Weights;
use std::time::Instant;

const PEAK: f64 = 47.5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn conv_graph(cin: usize, cout: usize, k: [usize; 2], pad: Pad, hw: usize) -> Graph {
    let mut g = Graph::new("bench");
    let x = g.add(Op::Input, Shape::nchw(cin, hw, hw), Default::default(), "x", &[]);
    g.inputs.push(x);
    let op = Op::Conv2d(Conv2d {
        out_channels: cout,
        in_channels: cin,
        kernel: k,
        stride: [1, 1],
        pad,
        groups: 1,
        key: "conv".into(),
        bias: true,
        epilogue: Epilogue { residual: None, relu: true },
        winograd: None,
    });
    let oh = hw + pad.top + pad.bottom + 1 - k[0];
    let ow = hw + pad.left + pad.right + 1 - k[1];
    let y = g.add(op, Shape::nchw(cout, oh, ow), Default::default(), "y", &[x]);
    g.outputs.push(("y".into(), y));
    g
}

fn convs(filter: &str) {
    println!("| conv | GFLOP/s (1 thread, median) | % of f32x4 peak | best decile GFLOP/s |");
    println!("|---|---|---|---|");
    let cases = [
        ("1x1 768->192 @17x17", conv_graph(768, 192, [1, 1], Pad::default(), 17)),
        ("1x1 288->64 @35x35", conv_graph(288, 64, [1, 1], Pad::default(), 35)),
        ("1x1 2048->384 @8x8", conv_graph(2048, 384, [1, 1], Pad::default(), 8)),
        ("3x3 64->96 @35x35 p1", conv_graph(64, 96, [3, 3], Pad::all(1), 35)),
        ("3x3 96->96 @35x35 p1", conv_graph(96, 96, [3, 3], Pad::all(1), 35)),
        ("1x7 192->192 @17x17 p(0,3)", conv_graph(192, 192, [1, 7], Pad::hw(0, 3), 17)),
        ("7x1 192->192 @17x17 p(3,0)", conv_graph(192, 192, [7, 1], Pad::hw(3, 0), 17)),
        ("3x3 80->192 @73x73 (v3 stem)", conv_graph(80, 192, [3, 3], Pad::default(), 73)),
        ("3x3 32->64 @147x147 p1 (v3 stem)", conv_graph(32, 64, [3, 3], Pad::all(1), 147)),
    ];
    for (name, g) in cases.into_iter().filter(|c| c.0.contains(filter)) {
        let w = Weights::init(&g, 1);
        let m =
            Model::compile(&g, &w, &JitOptions { threads: 1, verify: false, tier: tier(), ..JitOptions::default() })
                .expect("compile");
        let x = vec![0.5f32; g.node(g.inputs[0]).shape.numel()];
        let mut conv_t = Vec::new();
        let mut flops = 0;
        for _ in 0..60 {
            let p = m.profile(&[&x]).expect("run");
            let (f, t) = p.iter().filter(|s| s.0.starts_with("Conv")).fold((0, 0.0), |a, s| (a.0 + s.1, a.1 + s.2));
            flops = f;
            conv_t.push(t);
        }
        let gf = flops as f64 / median(conv_t.clone()) / 1e9;
        conv_t.sort_by(|a, b| a.total_cmp(b));
        let best = flops as f64 / conv_t[conv_t.len() / 10] / 1e9;
        println!("| {name} | {gf:.1} | {:.0}% | {best:.1} |", 100.0 * gf / PEAK);
    }
}

fn nets(filter: &str) {
    println!("| network | compile ms | 1 thread ms | 2 threads ms |");
    println!("|---|---|---|---|");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/architectures");
    let mut files: Vec<_> = std::fs::read_dir(dir).expect("architectures").flatten().map(|e| e.path()).collect();
    files.sort();
    for f in files.into_iter().filter(|f| f.to_string_lossy().contains(filter)) {
        let g = incc::frontend::compile_file(&f).expect("front end");
        let w = Weights::init(&g, 1);
        let x = vec![0.25f32; g.node(g.inputs[0]).shape.numel()];
        let mut row = Vec::new();
        let mut compile_ms = 0.0;
        for threads in [1, 2] {
            let t0 = Instant::now();
            let m =
                Model::compile(&g, &w, &JitOptions { threads, verify: false, tier: tier(), ..JitOptions::default() })
                    .expect("compile");
            compile_ms = t0.elapsed().as_secs_f64() * 1e3;
            m.run(&x).expect("warm up");
            let t: Vec<f64> = (0..7)
                .map(|_| {
                    let t0 = Instant::now();
                    m.run(&x).expect("run");
                    t0.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            row.push(median(t));
        }
        let name = f.file_stem().and_then(|s| s.to_str()).unwrap_or("?");
        println!("| {name} | {compile_ms:.0} | {:.1} | {:.1} |", row[0], row[1]);
    }
}

fn main() {
    let what = std::env::args().nth(1).unwrap_or_default();
    let filter = std::env::args().nth(2).unwrap_or_default();
    if what == "disasm" {
        return disasm();
    }
    if what != "nets" {
        convs(&filter);
    }
    if what != "convs" {
        nets(&filter);
    }
}

/// Prints the host machine code of the conv kernel of a small 1x1 layer (to check for
/// spills: `bench_conv disasm`).
fn disasm() {
    use cranelift_codegen::control::ControlPlane;
    let g = conv_graph(64, 16, [1, 1], Pad::default(), 10);
    let plan = incc::target::plan::plan(&g, &Weights::init(&g, 1), incc::target::Tier::Portable).expect("plan");
    let isa = incc::target::codegen::host_isa(false).expect("isa");
    let mut fbc = cranelift_frontend::FunctionBuilderContext::new();
    for (i, k) in plan.kernels.iter().enumerate() {
        let mut ctx = incc::target::codegen::function(k, &*isa, i as u32, &mut fbc);
        ctx.set_disasm(true);
        let code = ctx.compile(&*isa, &mut ControlPlane::default()).expect("compile");
        println!("{k:?}\n{}", code.vcode.clone().unwrap_or_default());
    }
}

/// The tier to measure: `INCC_TIER=auto|avx512|avx2|portable`, as `--tier` reads it (default,
/// and on a name that is none of them: auto).
fn tier() -> incc::target::TierChoice {
    std::env::var("INCC_TIER").ok().and_then(|t| t.parse().ok()).unwrap_or_default()
}
