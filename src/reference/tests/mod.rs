//! Unit tests of the reference interpreter: errors, fused epilogues and the f64 mode; the
//! per-op values pinned against PyTorch are in `ops`.

mod ops;

use super::*;
use crate::ir::{BatchNorm, Linear, Lrn, Pool, PoolKind};
use crate::ir::{Epilogue, Pad};
use crate::weights::Tensor;
use crate::weights::tests::{add, conv, with_input};

/// Runs a one-output graph.
fn run1(g: &Graph, w: &Weights, x: &[f32]) -> Vec<f32> {
    let out = run(g, w, &[x]).unwrap();
    assert_eq!(out.len(), 1);
    out.into_vec().remove(0).data
}

fn close(found: &[f32], expected: &[f32], tol: f32) {
    assert_eq!(found.len(), expected.len(), "{found:?} vs {expected:?}");
    for (i, (a, b)) in found.iter().zip(expected).enumerate() {
        assert!((a - b).abs() <= tol * b.abs().max(1.0), "[{i}]: found {a}, expected {b}\n{found:?}");
    }
}

fn t(shape: &[usize], data: Vec<f32>) -> Tensor {
    assert_eq!(shape.iter().product::<usize>(), data.len());
    Tensor { shape: shape.to_vec(), data }
}

fn pool_op(kind: PoolKind, k: usize, s: usize, pad: Pad, ceil: bool, count_include_pad: bool) -> Op {
    Op::Pool(Pool { kind, kernel: [k, k], stride: [s, s], pad, ceil, count_include_pad })
}

/// A graph `x -> op -> y` with input `shape`.
fn single(op: Op, shape: Shape) -> Graph {
    let (mut g, x) = with_input(shape);
    let y = add(&mut g, op, &[x]);
    g.outputs.push(("y".into(), y));
    g
}

fn ramp(n: usize, f: impl Fn(usize) -> f32) -> Vec<f32> {
    (0..n).map(f).collect()
}

fn conv_op(cin: usize, cout: usize, k: [usize; 2], stride: usize, pad: Pad, groups: usize, bias: bool) -> Op {
    let Op::Conv2d(mut c) = conv("conv", cin, cout, k, bias) else { unreachable!() };
    c.stride = [stride, stride];
    c.pad = pad;
    c.groups = groups;
    Op::Conv2d(c)
}

#[test]
fn wrong_inputs_are_errors() {
    let g = single(Op::Relu, Shape::nchw(1, 2, 2));
    let e = run(&g, &Weights::new(), &[]).unwrap_err();
    assert!(e.to_string().contains("has 1 input(s), 0 were given"), "{e}");
    let e = run(&g, &Weights::new(), &[&[1.0, 2.0, 3.0]]).unwrap_err();
    assert_eq!(e.to_string(), "input `x` must have shape 1x1x2x2, found 3 values");
    assert!(matches!(e, Error::InputShape { .. }));
}

#[test]
fn missing_or_mis_shaped_weights_are_errors() {
    let g = single(conv_op(1, 2, [3, 3], 1, Pad::all(1), 1, true), Shape::nchw(1, 4, 4));
    let x = [0.0; 16];
    let e = run(&g, &Weights::new(), &[&x]).unwrap_err().to_string();
    assert!(e.contains("`conv.weight` F32 [2, 1, 3, 3]") && e.contains("`conv.bias` F32 [2]"), "{e}");
    let mut w = Weights::new();
    w.insert("conv.weight", t(&[2, 1, 3, 3], vec![0.0; 18]));
    w.insert("conv.bias", t(&[1, 2], vec![0.0; 2]));
    let e = run(&g, &w, &[&x]).unwrap_err().to_string();
    assert!(e.contains("`conv.bias`: expected F32 [2], found F32 [1, 2]"), "{e}");
}

#[test]
fn a_node_whose_shape_disagrees_with_inference_is_an_error() {
    let (mut g, x) = with_input(Shape::nchw(1, 4, 4));
    let y = g.add(Op::Relu, Shape::nchw(1, 4, 5), Default::default(), "bad", &[x]);
    g.outputs.push(("y".into(), y));
    let e = run(&g, &Weights::new(), &[&[0.0; 16]]).unwrap_err().to_string();
    assert!(e.contains("`bad` (relu) records shape 1x1x4x5"), "{e}");
}

/// conv(3x3, p1) -> bn -> relu -> maxpool on a 3x8x8 input, with seeded weights.
fn conv_bn_relu_pool() -> (Graph, Weights) {
    let (mut g, x) = with_input(Shape::nchw(3, 8, 8));
    let c = add(&mut g, conv_op(3, 4, [3, 3], 1, Pad::all(1), 1, false), &[x]);
    let b = add(&mut g, Op::BatchNorm(BatchNorm { channels: 4, eps: 1e-5, key: "bn".into() }), &[c]);
    let r = add(&mut g, Op::Relu, &[b]);
    let p = add(&mut g, pool_op(PoolKind::Max, 3, 2, Pad::default(), true, true), &[r]);
    g.outputs.push(("y".into(), p));
    let w = Weights::init(&g, 42);
    (g, w)
}

#[test]
fn the_reference_agrees_with_itself_on_random_weights() {
    // Run twice: deterministic, and finite.
    let (g, w) = conv_bn_relu_pool();
    let x = ramp(192, |i| ((i * 37) % 17) as f32 / 8.0 - 1.0);
    let a = run1(&g, &w, &x);
    assert_eq!(a, run1(&g, &w, &x));
    assert_eq!(a.len(), 4 * 4 * 4);
    assert!(a.iter().all(|v| v.is_finite() && *v >= 0.0) && a.iter().any(|v| *v > 0.0));
}

#[test]
fn fused_epilogues_give_the_same_bits_as_the_unfused_ops() {
    // unfused: relu(add[0.2](r, conv(x)))   and   relu(linear(flatten(..)))
    // fused:   conv[residual 0.2, relu](x, r)  and   linear[relu](flatten(..))
    let build = |fused: bool| {
        let mut g = Graph::new("fuse");
        let x = g.add(Op::Input, Shape::nchw(2, 5, 5), Default::default(), "x", &[]);
        let r = g.add(Op::Input, Shape::nchw(3, 5, 5), Default::default(), "r", &[]);
        g.inputs = vec![x, r];
        let Op::Conv2d(mut c) = conv_op(2, 3, [3, 3], 1, Pad::all(1), 1, true) else { unreachable!() };
        let mut l = Linear { in_features: 75, out_features: 4, key: "fc".into(), bias: true, relu: false };
        let (y, z) = if fused {
            c.epilogue = Epilogue { residual: Some(0.2), relu: true };
            let y = add(&mut g, Op::Conv2d(c), &[x, r]);
            let f = add(&mut g, Op::Flatten, &[y]);
            l.relu = true;
            (y, add(&mut g, Op::Linear(l), &[f]))
        } else {
            let c = add(&mut g, Op::Conv2d(c), &[x]);
            let s = add(&mut g, Op::Add { scale: 0.2 }, &[r, c]);
            let y = add(&mut g, Op::Relu, &[s]);
            let f = add(&mut g, Op::Flatten, &[y]);
            let z = add(&mut g, Op::Linear(l), &[f]);
            (y, add(&mut g, Op::Relu, &[z]))
        };
        g.outputs = vec![("y".into(), y), ("z".into(), z)];
        g
    };
    let (unfused, fused) = (build(false), build(true));
    let w = Weights::init(&unfused, 5);
    let x = ramp(50, |i| ((i * 13) % 9) as f32 / 4.0 - 1.0);
    let r = ramp(75, |i| ((i * 5) % 7) as f32 / 3.0 - 1.0);
    let a = run(&unfused, &w, &[&x, &r]).unwrap();
    let b = run(&fused, &w, &[&x, &r]).unwrap();
    let bits =
        |o: &[Output]| -> Vec<Vec<u32>> { o.iter().map(|o| o.data.iter().map(|f| f.to_bits()).collect()).collect() };
    assert_eq!(bits(&a), bits(&b));
    assert!(a[0].data.contains(&0.0) && a[0].data.iter().any(|v| *v > 0.0), "relu is exercised");
}

/// Runs `g` in both modes on the same inputs and asserts that every output agrees within
/// `tol` relative to the output's largest magnitude.
fn f32_and_f64_agree(g: &Graph, w: &Weights, inputs: &[&[f32]], tol: f64) {
    let narrow = run(g, w, inputs).unwrap();
    let wide: Vec<Vec<f64>> = inputs.iter().map(|x| x.iter().map(|&v| v as f64).collect()).collect();
    let wide_refs: Vec<&[f64]> = wide.iter().map(Vec::as_slice).collect();
    let wide = run_f64(g, w, &wide_refs).unwrap();
    assert_eq!(narrow.len(), wide.len());
    for (o, o64) in narrow.iter().zip(&wide) {
        let (name, shape, a, b) = (&o.name, &o.shape, &o.data, &o64.data);
        assert_eq!((name, shape), (&o64.name, &o64.shape));
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(f64::MIN_POSITIVE, |m, v| m.max(v.abs()));
        for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
            assert!((x as f64 - y).abs() <= tol * scale, "{name}[{i}]: f32 {x}, f64 {y} (max |y| {scale})");
        }
        assert!(a.iter().any(|&v| v as f64 != 0.0), "{name} is not all zero");
    }
}

#[test]
fn f64_mode_agrees_with_f32_mode_on_conv_bn_relu_pool() {
    let (g, w) = conv_bn_relu_pool();
    let x = ramp(192, |i| ((i * 37) % 17) as f32 / 7.0 - 1.0);
    f32_and_f64_agree(&g, &w, &[&x], 1e-6);
}

#[test]
fn f64_mode_agrees_with_f32_mode_on_every_op() {
    // conv[residual, relu] -> bn -> lrn -> avg pool -> slices concatenated in swapped order
    // -> add[0.3] -> max pool -> global pool -> flatten -> linear[relu] -> dropout ->
    // softmax and l2 norm, with random weights.
    let mut g = Graph::new("all");
    let x = g.add(Op::Input, Shape::nchw(3, 8, 8), Default::default(), "x", &[]);
    let r = g.add(Op::Input, Shape::nchw(6, 8, 8), Default::default(), "r", &[]);
    g.inputs = vec![x, r];
    let Op::Conv2d(mut c) = conv_op(3, 6, [3, 3], 1, Pad::all(1), 1, true) else { unreachable!() };
    c.epilogue = Epilogue { residual: Some(0.17), relu: true };
    let c = add(&mut g, Op::Conv2d(c), &[x, r]);
    let b = add(&mut g, Op::BatchNorm(BatchNorm { channels: 6, eps: 1e-3, key: "bn".into() }), &[c]);
    let l = add(&mut g, Op::Lrn(Lrn { size: 3, alpha: 1e-2, beta: 0.75, k: 1.0 }), &[b]);
    let a = add(&mut g, pool_op(PoolKind::Avg, 3, 2, Pad::all(1), false, true), &[l]);
    let lo = add(&mut g, Op::Slice { start: 0, len: 2 }, &[a]);
    let hi = add(&mut g, Op::Slice { start: 2, len: 4 }, &[a]);
    let cat = add(&mut g, Op::Concat, &[hi, lo]);
    let s = add(&mut g, Op::Add { scale: 0.3 }, &[a, cat]);
    let m = add(&mut g, pool_op(PoolKind::Max, 2, 2, Pad::default(), false, true), &[s]);
    let gp = add(&mut g, Op::GlobalAvgPool, &[m]);
    let f = add(&mut g, Op::Flatten, &[gp]);
    let fc = Linear { in_features: 6, out_features: 5, key: "fc".into(), bias: true, relu: true };
    let fc = add(&mut g, Op::Linear(fc), &[f]);
    let d = add(&mut g, Op::Dropout { p: 0.2 }, &[fc]);
    let sm = add(&mut g, Op::Softmax, &[d]);
    let l2 = add(&mut g, Op::L2Norm { eps: 1e-12 }, &[d]);
    g.outputs = vec![("pooled".into(), s), ("softmax".into(), sm), ("l2".into(), l2)];
    let w = Weights::init(&g, 7);
    let x = ramp(192, |i| ((i * 37) % 17) as f32 / 7.0 - 1.0);
    let r = ramp(384, |i| ((i * 11) % 13) as f32 / 5.0 - 1.2);
    f32_and_f64_agree(&g, &w, &[&x, &r], 1e-6);
}

#[test]
fn f64_mode_keeps_what_f32_storage_rounds_away() {
    // conv `a` (1x1, 2 -> 2 channels) computes [x0 + x1, x0]; conv `b` (1x1, 2 -> 1)
    // computes a0 - a1, which is x1. With x = [2^24, 1], a0 = 2^24 + 1 is exact in f64
    // but stored as 2^24 in f32, so the f32 oracle cancels to 0 where the exact answer,
    // and f64 mode's, is 1.
    let (mut g, x) = with_input(Shape::nchw(2, 1, 1));
    let a = add(&mut g, conv("a", 2, 2, [1, 1], false), &[x]);
    let b = add(&mut g, conv("b", 2, 1, [1, 1], false), &[a]);
    g.outputs = vec![("a".into(), a), ("b".into(), b)];
    let mut w = Weights::new();
    w.insert("a.weight", t(&[2, 2, 1, 1], vec![1.0, 1.0, 1.0, 0.0]));
    w.insert("b.weight", t(&[1, 2, 1, 1], vec![1.0, -1.0]));
    let narrow = run(&g, &w, &[&[16777216.0, 1.0]]).unwrap();
    assert_eq!(narrow[0].data, [16777216.0, 16777216.0]);
    assert_eq!(narrow[1].data, [0.0]);
    let wide = run_f64(&g, &w, &[&[16777216.0, 1.0]]).unwrap();
    assert_eq!(wide[0].data, [16777217.0, 16777216.0]);
    assert_eq!(wide[1].data, [1.0]);
}

#[test]
fn f64_mode_checks_its_inputs_too() {
    let g = single(Op::Relu, Shape::nchw(1, 2, 2));
    let e = run_f64(&g, &Weights::new(), &[&[1.0, 2.0, 3.0]]).unwrap_err();
    assert_eq!(e.to_string(), "input `x` must have shape 1x1x2x2, found 3 values");
    let y = run_f64(&g, &Weights::new(), &[&[-1.0, f64::NAN, 2.0, -0.0]]).unwrap();
    assert!(y[0].data[0] == 0.0 && y[0].data[1].is_nan() && y[0].data[2] == 2.0);
}
