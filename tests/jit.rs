//! The JIT against the reference interpreter: whole architectures, random single layers
//! (proptest), concurrency, and cross compilation for aarch64.
//!
//! Run with `cargo test --release --test jit` (debug builds are slow on whole networks).

use incc::exec::JitOptions;
use incc::exec::Model;
use incc::ir::{BatchNorm, Conv2d, Epilogue, Graph, Linear, Lrn, Op, Output, Pad, Pool, PoolKind, Shape};
use incc::target::TierChoice;
use incc::weights::Weights;
use proptest::prelude::*;

mod common;
use common::{add, input, with_input};

fn opts(threads: usize) -> JitOptions {
    JitOptions { threads, verify: true, tier: TierChoice::Auto, precision: Default::default(), check_bounds: false }
}

/// Every tier this CPU runs.
fn tiers() -> Vec<TierChoice> {
    TierChoice::runnable()
}

/// max |jit - ref| / max |ref| over all outputs and every tier (checks names and shapes
/// too).
fn rel_diff(g: &Graph, w: &Weights, threads: usize, seed: u64) -> f32 {
    let n = g.node(g.inputs[0]).shape.numel();
    let x = input(n, seed);
    let want = incc::reference::run(g, w, &[&x]).expect("reference");
    tiers()
        .into_iter()
        .map(|tier| {
            let m = Model::compile(g, w, &JitOptions { tier, ..opts(threads) }).expect("compile");
            worst_diff(&m.run(&x).expect("run"), &want)
        })
        .fold(0.0, f32::max)
}

/// max |got - want| / max |want| over all outputs.
fn worst_diff(got: &[Output], want: &[Output]) -> f32 {
    assert_eq!(got.len(), want.len());
    let mut worst = 0.0f32;
    for (a, b) in got.iter().zip(want) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.shape, b.shape);
        assert_eq!(a.data.len(), b.data.len());
        let scale = b.data.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-30);
        let d = a
            .data
            .iter()
            .zip(&b.data)
            .fold(0.0f32, |m, (x, y)| if x.is_nan() && y.is_nan() { m } else { m.max((x - y).abs()) });
        worst = worst.max(d / scale);
        assert!(!d.is_nan(), "NaN in output {}", a.name);
    }
    worst
}

fn arch(name: &str) {
    let path = format!("{}/architectures/{name}.incep", env!("CARGO_MANIFEST_DIR"));
    let g = incc::frontend::compile_file(&path).expect("front end");
    let w = Weights::init(&g, 7);
    let n = g.node(g.inputs[0]).shape.numel();
    let x = input(n, 1);
    let want = incc::reference::run(&g, &w, &[&x]).expect("reference");
    for tier in tiers() {
        let m = Model::compile(&g, &w, &JitOptions { tier, ..opts(2) }).expect("compile");
        let d = worst_diff(&m.run(&x).expect("run"), &want);
        eprintln!("{name} -O0 {tier:?}: max rel diff {d:e}");
        assert!(d <= 1e-4, "{name} -O0 {tier:?}: max |jit - ref| = {d:e} of max |ref|");
    }
    // -O2 (folded, fused, concats in place, slices as views) against the unoptimised
    // reference.
    let (mut g2, mut w2) = (g.clone(), w.clone());
    incc::target::optimize(&mut g2, &mut w2, &incc::passes::PassOptions::default()).expect("passes");
    let kept: Vec<_> = want.into_iter().filter(|o| g2.outputs.iter().any(|(n, _)| *n == o.name)).collect();
    for tier in tiers() {
        // With guard zones around every buffer, checked after every kernel.
        let m = Model::compile(&g2, &w2, &JitOptions { tier, check_bounds: true, ..opts(2) }).expect("compile");
        let d = worst_diff(&m.run(&x).expect("run"), &kept);
        eprintln!("{name} -O2 {tier:?}: max rel diff {d:e}");
        assert!(d <= 1e-4, "{name} -O2 {tier:?}: max |jit - ref| = {d:e} of max |ref|");
    }
}

#[test]
fn googlenet() {
    arch("googlenet");
}
#[test]
fn googlenet_torchvision() {
    arch("googlenet_torchvision");
}
#[test]
fn bn_inception() {
    arch("bn_inception");
}
#[test]
fn inception_v3() {
    arch("inception_v3");
}
#[test]
fn inception_v4() {
    arch("inception_v4");
}
#[test]
fn inception_resnet_v1() {
    arch("inception_resnet_v1");
}
#[test]
fn inception_resnet_v2() {
    arch("inception_resnet_v2");
}

// ---- single layers ----

fn check(g: &Graph, seed: u64) {
    let w = Weights::init(g, seed);
    let d = rel_diff(g, &w, 1, seed);
    assert!(d <= 1e-4, "rel diff {d:e}\n{g:?}");
}

fn conv_op(cin: usize, cout: usize, k: [usize; 2], s: [usize; 2], pad: Pad, groups: usize, bias: bool) -> Op {
    Op::Conv2d(Conv2d {
        out_channels: cout,
        in_channels: cin,
        kernel: k,
        stride: s,
        pad,
        groups,
        key: "conv".into(),
        bias,
        epilogue: Epilogue::default(),
        winograd: None,
    })
}

fn conv_fits(h: usize, k: usize, pb: usize, pa: usize) -> bool {
    h + pb + pa >= k
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn random_convs(
        cin in 1usize..13, cout in 1usize..19, kh in 1usize..8, kw in 1usize..8,
        sh in 1usize..4, sw in 1usize..4, h in 1usize..12, w in 1usize..12,
        pt in 0usize..4, pb in 0usize..4, pl in 0usize..4, pr in 0usize..4,
        groups in 1usize..4, bias: bool, seed in 0u64..1000,
    ) {
        let (cin, cout) = (cin * groups, cout * groups);
        prop_assume!(conv_fits(h, kh, pt, pb) && conv_fits(w, kw, pl, pr));
        let (mut g, x) = with_input(Shape::nchw(cin, h, w));
        let pad = Pad { top: pt, bottom: pb, left: pl, right: pr };
        let y = add(&mut g, conv_op(cin, cout, [kh, kw], [sh, sw], pad, groups, bias), &[x]);
        g.outputs.push(("y".into(), y));
        check(&g, seed);
    }

    #[test]
    fn random_pools(
        c in 1usize..11, k in 1usize..6, kw in 1usize..6, s in 1usize..4, h in 1usize..14,
        w in 1usize..14, p in 0usize..3, ceil: bool, incl: bool, max: bool, seed in 0u64..1000,
    ) {
        prop_assume!(p <= k / 2 && p <= kw / 2 && h + 2 * p >= k && w + 2 * p >= kw);
        let (mut g, x) = with_input(Shape::nchw(c, h, w));
        let op = Op::Pool(Pool {
            kind: if max { PoolKind::Max } else { PoolKind::Avg },
            kernel: [k, kw], stride: [s, s], pad: Pad::all(p), ceil, count_include_pad: incl,
        });
        let y = add(&mut g, op, &[x]);
        g.outputs.push(("y".into(), y));
        check(&g, seed);
    }

    #[test]
    fn random_fused_convs(
        cin in 1usize..10, cout in 1usize..20, k in 0usize..3, h in 1usize..9, scale in -2.0f32..2.0,
        relu: bool, seed in 0u64..1000,
    ) {
        let k = 2 * k + 1;
        let (mut g, x) = with_input(Shape::nchw(cin, h, h));
        let r = add(&mut g, conv_op(cin, cout, [1, 1], [1, 1], Pad::default(), 1, true), &[x]);
        let Op::Conv2d(mut c) = conv_op(cin, cout, [k, k], [1, 1], Pad::all(k / 2), 1, true) else { unreachable!() };
        c.key = "conv2".into();
        c.epilogue = Epilogue { residual: Some(scale), relu };
        let y = add(&mut g, Op::Conv2d(c), &[x, r]);
        g.outputs.push(("y".into(), y));
        check(&g, seed);
    }

    /// Winograd convolutions (honoured on the wide tiers) of every kernel shape
    /// `select-winograd` picks and other tile sizes, with partial edge tiles, asymmetric
    /// padding, bias, residual and ReLU.
    #[test]
    fn random_winograd_convs(
        cin in 1usize..40, cout in 1usize..40, shape in 0usize..8, h in 1usize..20, w in 1usize..20,
        pads in prop::array::uniform4(0usize..4), mh in 1usize..5, mw in 1usize..5, bias: bool,
        residual in prop::option::of(-2.0f32..2.0), relu: bool, seed in 0u64..1000,
    ) {
        let k = [[3, 3], [5, 5], [1, 7], [7, 1], [1, 3], [3, 1], [1, 5], [5, 1]][shape];
        let [pt, pb, pl, pr] = pads.map(|p| p.min(k[0].max(k[1]) / 2));
        let (pt, pb) = if k[0] == 1 { (0, 0) } else { (pt, pb) };
        let (pl, pr) = if k[1] == 1 { (0, 0) } else { (pl, pr) };
        prop_assume!(conv_fits(h, k[0], pt, pb) && conv_fits(w, k[1], pl, pr));
        let m = [if k[0] == 1 { 1 } else { mh }, if k[1] == 1 { 1 } else { mw }];
        prop_assume!(m[0] + k[0] <= 9 && m[1] + k[1] <= 9);
        let (mut g, x) = with_input(Shape::nchw(cin, h, w));
        let pad = Pad { top: pt, bottom: pb, left: pl, right: pr };
        let Op::Conv2d(mut c) = conv_op(cin, cout, k, [1, 1], pad, 1, bias) else { unreachable!() };
        c.winograd = Some(m);
        c.epilogue = Epilogue { residual, relu };
        let mut operands = vec![x];
        if residual.is_some() {
            let oh = h + pt + pb + 1 - k[0];
            let ow = w + pl + pr + 1 - k[1];
            let mut r = conv_op(cin, cout, [1, 1], [1, 1], Pad::default(), 1, true);
            if let Op::Conv2d(rc) = &mut r {
                rc.key = "res".into();
            }
            let rid = add(&mut g, r, &[x]);
            prop_assume!(g.node(rid).shape == Shape::nchw(cout, oh, ow));
            operands.push(rid);
        }
        let y = add(&mut g, Op::Conv2d(c), &operands);
        g.outputs.push(("y".into(), y));
        check(&g, seed);
    }

    #[test]
    fn random_elementwise_chains(c in 1usize..21, h in 1usize..7, size in 1usize..6, seed in 0u64..1000) {
        let (mut g, x) = with_input(Shape::nchw(c, h, h));
        let b = add(&mut g, Op::BatchNorm(BatchNorm { channels: c, eps: 1e-3, key: "bn".into() }), &[x]);
        let r = add(&mut g, Op::Relu, &[b]);
        let a = add(&mut g, Op::Add { scale: 0.17 }, &[x, r]);
        let l = add(&mut g, Op::Lrn(Lrn { size, alpha: 1e-2, beta: 0.75, k: 1.0 }), &[a]);
        let l2 = add(&mut g, Op::Lrn(Lrn { size, alpha: 0.3, beta: 0.6, k: 2.0 }), &[a]);
        let cat = add(&mut g, Op::Concat, &[l, x, l2]);
        let gp = add(&mut g, Op::GlobalAvgPool, &[cat]);
        let gf = add(&mut g, Op::Flatten, &[gp]);
        let sm = add(&mut g, Op::Softmax, &[gf]);
        let n = add(&mut g, Op::L2Norm { eps: 1e-12 }, &[gf]);
        let f = add(&mut g, Op::Flatten, &[a]);
        let d = add(&mut g, Op::Dropout { p: 0.5 }, &[f]);
        let fc = add(&mut g, Op::Linear(Linear { in_features: c * h * h, out_features: 13, key: "fc".into(), bias: true, relu: true }), &[d]);
        let bn1 = add(&mut g, Op::BatchNorm(BatchNorm { channels: 13, eps: 1e-5, key: "bn1".into() }), &[fc]);
        let s1 = add(&mut g, Op::Softmax, &[bn1]);
        let n1 = add(&mut g, Op::L2Norm { eps: 1e-12 }, &[bn1]);
        for (name, id) in [("cat", cat), ("sm", sm), ("n", n), ("gp", gp), ("f", f), ("s1", s1), ("n1", n1), ("bn1", bn1)] {
            g.outputs.push((name.into(), id));
        }
        check(&g, seed);
    }
}

/// The plan honours a Winograd annotation on the wide tiers, AVX-512 and AVX2 (whose 16
/// registers hold the 8-point transforms of 7-tap kernels too); the portable tier runs
/// every convolution directly.
#[test]
fn winograd_is_planned_where_the_registers_allow() {
    use incc::target::Tier;
    use incc::target::codegen::kernel::KernelSpec;
    for (k, m, on_avx2) in [([3, 3], [4, 4], true), ([1, 7], [1, 2], true), ([7, 1], [2, 1], true)] {
        let (mut g, x) = with_input(Shape::nchw(32, 17, 17));
        let pad = Pad { top: k[0] / 2, bottom: k[0] / 2, left: k[1] / 2, right: k[1] / 2 };
        let Op::Conv2d(mut c) = conv_op(32, 48, k, [1, 1], pad, 1, true) else { unreachable!() };
        c.winograd = Some(m);
        let y = add(&mut g, Op::Conv2d(c), &[x]);
        g.outputs.push(("y".into(), y));
        let w = Weights::init(&g, 1);
        for (tier, want) in [(Tier::Avx512, true), (Tier::Avx2, on_avx2), (Tier::Portable, false)] {
            let plan = incc::target::plan::plan(&g, &w, tier).unwrap();
            let wino = plan.kernels.iter().any(|k| matches!(k, KernelSpec::WinogradIn(_)));
            assert_eq!(wino, want, "{k:?} on {tier:?}");
        }
    }
}

/// A Winograd layer too large for one band (its `V` and `M` would exceed 4 MiB) runs as
/// bands of tile rows, the last one partial, and still matches the reference.
#[test]
fn large_winograd_layers_run_in_bands() {
    use incc::target::Tier;
    use incc::target::codegen::kernel::KernelSpec;
    use incc::target::plan::{Arg, Step};
    let (mut g, x) = with_input(Shape::nchw(32, 145, 145));
    let pad = Pad { top: 1, bottom: 1, left: 1, right: 1 };
    let Op::Conv2d(mut c) = conv_op(32, 64, [3, 3], [1, 1], pad, 1, true) else { unreachable!() };
    c.winograd = Some([2, 2]);
    c.epilogue = Epilogue { residual: None, relu: true };
    let y = add(&mut g, Op::Conv2d(c), &[x]);
    g.outputs.push(("y".into(), y));
    let plan = incc::target::plan::plan(&g, &Weights::init(&g, 1), Tier::Avx512).unwrap();
    let is_in = |k: usize| matches!(plan.kernels[k], KernelSpec::WinogradIn(_));
    // (first tile row, rows) of each band's input transform step.
    let bands: Vec<(usize, usize)> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Kernel { kernel, args, .. } if is_in(kernel.index()) => {
                match (&plan.kernels[kernel.index()], args.last()) {
                    (KernelSpec::WinogradIn(w), Some(Arg::Value(first))) => Some((*first, w.band)),
                    _ => panic!("{s:?}"),
                }
            }
            _ => None,
        })
        .collect();
    assert!(bands.len() > 2, "{bands:?}");
    assert_eq!(bands[0].0, 0);
    assert!(bands.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0), "{bands:?}");
    assert_eq!(bands.last().map(|b| b.0 + b.1), Some(73));
    // Bands of one size share their kernels: one for the full bands, one for the last.
    assert_eq!((0..plan.kernels.len()).filter(|&k| is_in(k)).count(), 2);
    check(&g, 5);
}

#[test]
fn wrong_input_length_is_an_error() {
    let (mut g, x) = with_input(Shape::nchw(3, 4, 4));
    let y = add(&mut g, Op::Relu, &[x]);
    g.outputs.push(("y".into(), y));
    let m = Model::compile(&g, &Weights::new(), &opts(1)).expect("compile");
    let e = m.run(&[0.0; 5]).unwrap_err();
    assert!(matches!(e, incc::Error::InputShape { .. }), "{e}");
}

#[test]
fn runs_from_eight_threads_agree() {
    let path = format!("{}/architectures/googlenet.incep", env!("CARGO_MANIFEST_DIR"));
    let g = incc::frontend::compile_file(&path).expect("front end");
    let w = Weights::init(&g, 3);
    let x = input(g.node(g.inputs[0]).shape.numel(), 5);
    let single = Model::compile(&g, &w, &opts(1)).expect("compile").run(&x).expect("run");
    let m = Model::compile(&g, &w, &opts(2)).expect("compile");
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..8).map(|_| s.spawn(|| m.run(&x).expect("run"))).collect();
        for h in hs {
            let got = h.join().expect("thread");
            for (a, b) in got.iter().zip(&single) {
                assert_eq!(a.data, b.data, "output {}", a.name);
            }
        }
    });
}

#[test]
fn model_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Model>();
}

#[test]
fn compiles_for_aarch64() {
    let path = format!("{}/architectures/inception_v3.incep", env!("CARGO_MANIFEST_DIR"));
    let g = incc::frontend::compile_file(&path).expect("front end");
    let w = Weights::init(&g, 1);
    let plan = incc::target::plan::plan(&g, &w, incc::target::Tier::Portable).expect("plan");
    let isa = incc::target::codegen::isa_by_name("aarch64", true).expect("aarch64 backend");
    let bytes = incc::target::codegen::compile_for(&*isa, &plan.kernels).expect("aarch64 codegen");
    assert!(bytes > 0);
    // The host path with the same kernels.
    let host = incc::target::codegen::host_isa(true).expect("host");
    assert!(incc::target::codegen::compile_for(&*host, &plan.kernels).expect("host codegen") > 0);
}

/// Layers wide enough that the reduction runs in several input-channel chunks (partial
/// sums kept in the output), with the fused residual and relu on the last chunk.
#[test]
fn chunked_reductions() {
    for (cin, cout, k, hw, pad) in [(200, 20, 3, 40, 1), (300, 12, 1, 30, 0), (150, 17, 7, 19, 3), (514, 9, 1, 33, 0)] {
        let (mut g, x) = with_input(Shape::nchw(cin, hw, hw));
        let r = add(&mut g, conv_op(cin, cout, [1, 1], [1, 1], Pad::default(), 1, true), &[x]);
        let Op::Conv2d(mut c) = conv_op(cin, cout, [k, k], [1, 1], Pad::all(pad), 1, true) else { unreachable!() };
        c.key = "conv2".into();
        c.epilogue = Epilogue { residual: Some(0.3), relu: true };
        let y = add(&mut g, Op::Conv2d(c), &[x, r]);
        g.outputs.push(("y".into(), y));
        check(&g, 11);
    }
}
