//! The reference interpreter: plain loops over NCHW tensors, the oracle every fast path is
//! checked against.
//!
//! Each op follows PyTorch's semantics (documented on the op's function below). Nothing
//! here is optimised: the loops say what is computed, in the order a reader expects.
//!
//! Precision: activations are stored as `f32` ([`run`]) or `f64` ([`run_f64`]); the op
//! loops are written once, generic over that element type. Sums over many terms
//! (convolution, linear, pooling, global pooling, LRN, L2 norm and softmax) are accumulated
//! in `f64` and rounded to the element type once; element-wise ops (batch norm, add, relu,
//! and the fused epilogues of convolutions and linear layers) are computed in the element
//! type, as PyTorch does for a model of that dtype. Fast paths that accumulate in `f32`
//! therefore differ from the `f32` oracle only by their own rounding.
//!
//! Weights and the scalar attributes of ops (batch-norm `eps`, residual scales, LRN
//! constants) are `f32` in the IR and [`Weights`]; the `f64` mode widens them exactly, so
//! it computes the network whose parameters are those `f32` values, in `f64` arithmetic.

use crate::error::{Error, Result};
use crate::ir::infer::infer;
use crate::ir::{BatchNorm, Conv2d, Graph, Linear, Lrn, NodeId, Op, Pool, PoolKind, Shape};
use crate::weights::Weights;
use std::collections::HashMap;
use std::ops::{Add, Div, Mul, Sub};

/// The element type activations are stored in: `f32` or `f64`.
trait Elem:
    Copy
    + Send
    + Sync
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + 'static
{
    /// `0`.
    const ZERO: Self;
    /// `-inf`.
    const NEG_INFINITY: Self;
    /// `v` rounded to the nearest element.
    fn from_f64(v: f64) -> Self;
    /// `v` exactly (`f32` widens without rounding).
    fn from_f32(v: f32) -> Self;
    /// `self` exactly.
    fn to_f64(self) -> f64;
    /// The square root, correctly rounded.
    fn sqrt(self) -> Self;
    /// The larger of `self` and `other`, ignoring a NaN (as `f32::max`).
    fn max(self, other: Self) -> Self;
    /// Whether `self` is NaN.
    fn is_nan(self) -> bool;
}

impl Elem for f32 {
    const ZERO: Self = 0.0;
    const NEG_INFINITY: Self = f32::NEG_INFINITY;
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn from_f32(v: f32) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    fn max(self, other: Self) -> Self {
        f32::max(self, other)
    }
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
}

impl Elem for f64 {
    const ZERO: Self = 0.0;
    const NEG_INFINITY: Self = f64::NEG_INFINITY;
    fn from_f64(v: f64) -> Self {
        v
    }
    fn from_f32(v: f32) -> Self {
        v as f64
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    fn max(self, other: Self) -> Self {
        f64::max(self, other)
    }
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
}

/// Runs `graph` on `inputs` (one slice per [`Graph::inputs`], NCHW, in order) with
/// `weights`, returning each of [`Graph::outputs`] as `(name, shape, values)`, in order.
///
/// Errors: a wrong number of inputs ([`Error::Invalid`]), an input of the wrong length
/// ([`Error::InputShape`]), weights that are missing or mis-shaped ([`Error::Invalid`],
/// listing all of them), or a graph whose recorded shapes disagree with shape inference
/// ([`Error::Invalid`], a compiler bug).
pub fn run(graph: &Graph, weights: &Weights, inputs: &[&[f32]]) -> Result<Vec<(String, Shape, Vec<f32>)>> {
    run_as(graph, weights, inputs)
}

/// [`run`] with activations stored as `f64` instead of `f32`: the same ops, loops and
/// summation order, rounding to `f64` where [`run`] rounds to `f32`. Weights (`f32` in
/// [`Weights`]) and scalar attributes are widened exactly. Use it to compare against a
/// float64 run of the source model, where `f32` rounding, amplified through a deep
/// network, would hide the semantics being checked. Errors as [`run`].
pub fn run_f64(graph: &Graph, weights: &Weights, inputs: &[&[f64]]) -> Result<Vec<(String, Shape, Vec<f64>)>> {
    run_as(graph, weights, inputs)
}

/// [`run`] for activations of element type `E`.
fn run_as<E: Elem>(graph: &Graph, weights: &Weights, inputs: &[&[E]]) -> Result<Vec<(String, Shape, Vec<E>)>> {
    if inputs.len() != graph.inputs.len() {
        return Err(Error::Invalid(format!(
            "network `{}` has {} input(s), {} were given",
            graph.name,
            graph.inputs.len(),
            inputs.len()
        )));
    }
    weights.check(graph)?;
    let mut given: HashMap<NodeId, &[E]> = HashMap::new();
    for (&id, &data) in graph.inputs.iter().zip(inputs) {
        let node = graph.node(id);
        if data.len() != node.shape.numel() {
            return Err(Error::InputShape {
                name: node.name.clone(),
                expected: node.shape.to_string(),
                found: format!("{} values", data.len()),
            });
        }
        given.insert(id, data);
    }

    // Values are dropped once their last user has run; outputs are kept to the end.
    let mut uses: HashMap<NodeId, usize> = HashMap::new();
    for id in graph.node_ids() {
        for o in graph.operands(id) {
            *uses.entry(o).or_default() += 1;
        }
    }
    for (_, id) in &graph.outputs {
        *uses.entry(*id).or_default() += 1;
    }
    let mut values: HashMap<NodeId, Vec<E>> = HashMap::new();
    for id in graph.topo_order() {
        let node = graph.node(id);
        let operands = graph.operands(id);
        let value = if let Op::Input = node.op {
            let data = given
                .get(&id)
                .ok_or_else(|| Error::Invalid(format!("input node {id} `{}` is not a network input", node.name)))?;
            data.to_vec()
        } else {
            let shapes: Vec<&Shape> = operands.iter().map(|&o| &graph.node(o).shape).collect();
            match infer(&node.op, &shapes) {
                Ok(s) if s == node.shape => {}
                found => {
                    return Err(Error::Invalid(format!(
                        "node {id} `{}` ({}) records shape {}, its operands give {found:?}",
                        node.name, node.op, node.shape
                    )));
                }
            }
            let mut ins = Vec::with_capacity(operands.len());
            for (&o, s) in operands.iter().zip(&shapes) {
                let v =
                    values.get(&o).ok_or_else(|| Error::Invalid(format!("operand {o} of {id} was not computed")))?;
                ins.push((*s, v.as_slice()));
            }
            eval(&node.op, &ins, &node.shape, weights)?
        };
        for o in operands {
            if let Some(n) = uses.get_mut(&o) {
                *n -= 1;
                if *n == 0 {
                    values.remove(&o);
                }
            }
        }
        values.insert(id, value);
    }
    graph
        .outputs
        .iter()
        .map(|(name, id)| {
            let v = values.get(id).ok_or_else(|| Error::Invalid(format!("output `{name}` ({id}) was not computed")))?;
            Ok((name.clone(), graph.node(*id).shape.clone(), v.clone()))
        })
        .collect()
}

/// One op on operands `ins` (shape, values), producing a tensor of shape `out`.
fn eval<E: Elem>(op: &Op, ins: &[(&Shape, &[E])], out: &Shape, w: &Weights) -> Result<Vec<E>> {
    let Some(&(xs, x)) = ins.first() else {
        return Err(Error::Invalid(format!("{op} has no operands")));
    };
    Ok(match op {
        Op::Input => x.to_vec(),
        Op::Conv2d(c) => {
            let bias = if c.bias { Some(param(w, &c.key, "bias")?) } else { None };
            let mut y = conv2d(c, x, xs, out, param(w, &c.key, "weight")?, bias);
            // The fused epilogue, in the element type and in the order of the unfused ops
            // (`add[scale](residual, conv)`, then `relu`), so fusing never changes a bit.
            if let Some(scale) = c.epilogue.residual {
                let residual =
                    ins.get(1).map(|r| r.1).ok_or_else(|| Error::Invalid(format!("{op} has no residual operand")))?;
                let scale = E::from_f32(scale);
                y.iter_mut().zip(residual).for_each(|(v, &r)| *v = r + scale * *v);
            }
            if c.epilogue.relu {
                relu(&mut y);
            }
            y
        }
        Op::BatchNorm(b) => batch_norm(b, x, xs, w)?,
        Op::Relu => {
            let mut y = x.to_vec();
            relu(&mut y);
            y
        }
        Op::Pool(p) => pool(p, x, xs, out),
        Op::GlobalAvgPool => {
            let plane = xs.h() * xs.w();
            x.chunks(plane).map(|p| E::from_f64(p.iter().map(|&v| v.to_f64()).sum::<f64>() / plane as f64)).collect()
        }
        Op::Lrn(l) => lrn(l, x, xs),
        Op::Dropout { .. } | Op::Flatten => x.to_vec(),
        Op::Linear(l) => {
            let bias = if l.bias { Some(param(w, &l.key, "bias")?) } else { None };
            let mut y = linear(l, x, param(w, &l.key, "weight")?, bias);
            if l.relu {
                relu(&mut y);
            }
            y
        }
        Op::L2Norm { eps } => along_channels(x, xs, |v| {
            let norm = v.iter().map(|&a| a.to_f64() * a.to_f64()).sum::<f64>().sqrt();
            let d = norm.max(*eps as f64);
            v.iter().map(|&a| E::from_f64(a.to_f64() / d)).collect()
        }),
        Op::Softmax => along_channels(x, xs, |v| {
            let m = v.iter().fold(E::NEG_INFINITY, |m, &a| m.max(a)).to_f64();
            let e: Vec<f64> = v.iter().map(|&a| (a.to_f64() - m).exp()).collect();
            let s: f64 = e.iter().sum();
            e.iter().map(|&a| E::from_f64(a / s)).collect()
        }),
        Op::Concat => {
            // For each batch element, each operand's channels in turn.
            let mut y = Vec::with_capacity(out.numel());
            for b in 0..xs.0[0] {
                for (s, v) in ins {
                    let chunk = s.numel() / s.0[0];
                    y.extend_from_slice(&v[b * chunk..(b + 1) * chunk]);
                }
            }
            y
        }
        Op::Slice { start, len } => {
            // Channels start..start+len of each batch element.
            let per_channel = xs.0[2..].iter().product::<usize>();
            let chunk = xs.numel() / xs.0[0];
            let mut y = Vec::with_capacity(out.numel());
            for b in 0..xs.0[0] {
                let base = b * chunk + start * per_channel;
                y.extend_from_slice(&x[base..base + len * per_channel]);
            }
            y
        }
        Op::Add { scale } => {
            let scale = E::from_f32(*scale);
            x.iter().zip(ins[1].1).map(|(&a, &b)| a + scale * b).collect()
        }
    })
}

/// `max(v, 0)` in place; NaN stays NaN, as in PyTorch.
fn relu<E: Elem>(v: &mut [E]) {
    v.iter_mut().filter(|v| **v < E::ZERO).for_each(|v| *v = E::ZERO);
}

/// The parameter `<key>.<suffix>`; [`Weights::check`] has verified its shape.
fn param<'a>(w: &'a Weights, key: &str, suffix: &str) -> Result<&'a [f32]> {
    let full = format!("{key}.{suffix}");
    w.get(&full).map(|t| t.data.as_slice()).ok_or_else(|| Error::Invalid(format!("no weight tensor `{full}`")))
}

/// `[N, C, H, W]` of a feature map.
fn nchw(s: &Shape) -> (usize, usize, usize, usize) {
    (s.0[0], s.0[1], s.0[2], s.0[3])
}

/// Cross-correlation with zero padding per side, grouped:
/// `y[o, i, j] = bias[o] + sum_{c in group(o), ky, kx} x[c, i*sh + ky - top, j*sw + kx - left] * w[o, c % (C/g), ky, kx]`.
fn conv2d<E: Elem>(c: &Conv2d, x: &[E], xs: &Shape, ys: &Shape, w: &[f32], bias: Option<&[f32]>) -> Vec<E> {
    let (n, cin, h, wd) = nchw(xs);
    let (_, cout, oh, ow) = nchw(ys);
    let (in_per_group, out_per_group) = (cin / c.groups, cout / c.groups);
    let [kh, kw] = c.kernel;
    let [sh, sw] = c.stride;
    let mut y = vec![E::ZERO; ys.numel()];
    // One output channel's plane per work item; the planes are independent, so they are shared
    // out over the cores. Each sum is computed the same way whatever the thread count.
    let plane = oh * ow;
    let out_channel = |b: usize, o: usize, out: &mut [E]| {
        let g = o / out_per_group;
        for i in 0..oh {
            for j in 0..ow {
                let mut acc = bias.map_or(0.0, |b| b[o] as f64);
                for ic in 0..in_per_group {
                    let ci = g * in_per_group + ic;
                    for ky in 0..kh {
                        let Some(iy) = (i * sh + ky).checked_sub(c.pad.top).filter(|&iy| iy < h) else {
                            continue;
                        };
                        for kx in 0..kw {
                            let Some(ix) = (j * sw + kx).checked_sub(c.pad.left).filter(|&ix| ix < wd) else {
                                continue;
                            };
                            let xv = x[((b * cin + ci) * h + iy) * wd + ix].to_f64();
                            let wv = w[((o * in_per_group + ic) * kh + ky) * kw + kx] as f64;
                            acc += xv * wv;
                        }
                    }
                }
                out[i * ow + j] = E::from_f64(acc);
            }
        }
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(cout.max(1));
    let per = cout.div_ceil(threads.max(1)).max(1);
    for b in 0..n {
        let batch = &mut y[b * cout * plane..(b + 1) * cout * plane];
        std::thread::scope(|s| {
            for (t, chunk) in batch.chunks_mut(per * plane.max(1)).enumerate() {
                let out_channel = &out_channel;
                s.spawn(move || {
                    for (k, out) in chunk.chunks_mut(plane.max(1)).enumerate() {
                        out_channel(b, t * per + k, out);
                    }
                });
            }
        });
    }
    y
}

/// `y = (x - mean) / sqrt(var + eps) * gamma + beta` per channel (dimension 1), in the
/// element type.
fn batch_norm<E: Elem>(bn: &BatchNorm, x: &[E], xs: &Shape, w: &Weights) -> Result<Vec<E>> {
    let gamma = param(w, &bn.key, "weight")?;
    let beta = param(w, &bn.key, "bias")?;
    let mean = param(w, &bn.key, "running_mean")?;
    let var = param(w, &bn.key, "running_var")?;
    let eps = E::from_f32(bn.eps);
    let inner: usize = xs.0[2..].iter().product();
    let channels = xs.c();
    Ok(x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = (i / inner) % channels;
            let (mean, var, gamma, beta) =
                (E::from_f32(mean[c]), E::from_f32(var[c]), E::from_f32(gamma[c]), E::from_f32(beta[c]));
            (v - mean) / (var + eps).sqrt() * gamma + beta
        })
        .collect())
}

/// Max or average pooling, as PyTorch's `max_pool2d` / `avg_pool2d` (extended to padding
/// that differs per side).
///
/// A window starts at `i*stride - pad_before`. Max: the largest real input element (the
/// padding is `-inf`, so it never wins; NaN propagates). Average: the sum of the real input
/// elements divided by, with `count_include_pad`, the window clipped to the *padded* input
/// (`min(start + k, n + pad_after) - start` per dimension: a ceil-mode window running past
/// the padding is not counted in full), and otherwise the number of real elements.
fn pool<E: Elem>(p: &Pool, x: &[E], xs: &Shape, ys: &Shape) -> Vec<E> {
    let (n, ch, h, wd) = nchw(xs);
    let (_, _, oh, ow) = nchw(ys);
    let (top, left) = (p.pad.top as isize, p.pad.left as isize);
    let (h_i, w_i) = (h as isize, wd as isize);
    let mut y = Vec::with_capacity(ys.numel());
    for plane in x.chunks(h * wd).take(n * ch) {
        for i in 0..oh {
            for j in 0..ow {
                let y0 = (i * p.stride[0]) as isize - top;
                let x0 = (j * p.stride[1]) as isize - left;
                let (y1, x1) = (y0 + p.kernel[0] as isize, x0 + p.kernel[1] as isize);
                // Real input rows and columns covered by the window.
                let rows = y0.max(0)..y1.min(h_i);
                let cols = x0.max(0)..x1.min(w_i);
                let real = || rows.clone().flat_map(|r| cols.clone().map(move |c| plane[r as usize * wd + c as usize]));
                let v = match p.kind {
                    PoolKind::Max => real().fold(E::NEG_INFINITY, |m, v| if v > m || v.is_nan() { v } else { m }),
                    PoolKind::Avg => {
                        let count = rows.len() * cols.len();
                        let divisor = if p.count_include_pad {
                            let ph = y1.min(h_i + p.pad.bottom as isize) - y0;
                            let pw = x1.min(w_i + p.pad.right as isize) - x0;
                            (ph * pw) as usize
                        } else {
                            count
                        };
                        if count == 0 {
                            E::ZERO
                        } else {
                            E::from_f64(real().map(|v| v.to_f64()).sum::<f64>() / divisor as f64)
                        }
                    }
                };
                y.push(v);
            }
        }
    }
    y
}

/// PyTorch `LocalResponseNorm`: `y_c = x_c / (k + alpha/size * sum x_{c'}^2)^beta` over
/// `c' = c - size/2 ..= c + (size-1)/2`, channels outside `0..C` counting as zero.
fn lrn<E: Elem>(l: &Lrn, x: &[E], xs: &Shape) -> Vec<E> {
    let (n, ch, h, wd) = nchw(xs);
    let plane = h * wd;
    let mut y = vec![E::ZERO; x.len()];
    for b in 0..n {
        for c in 0..ch {
            let lo = c.saturating_sub(l.size / 2);
            let hi = (c + (l.size - 1) / 2).min(ch - 1);
            for s in 0..plane {
                let at = |c: usize| x[(b * ch + c) * plane + s].to_f64();
                let sum: f64 = (lo..=hi).map(|c| at(c) * at(c)).sum();
                let div = (l.k as f64 + l.alpha as f64 / l.size as f64 * sum).powf(l.beta as f64);
                y[(b * ch + c) * plane + s] = E::from_f64(at(c) / div);
            }
        }
    }
    y
}

/// `y[b, o] = bias[o] + sum_i x[b, i] * w[o, i]`.
fn linear<E: Elem>(l: &Linear, x: &[E], w: &[f32], bias: Option<&[f32]>) -> Vec<E> {
    let mut y = Vec::with_capacity(x.len() / l.in_features * l.out_features);
    for row in x.chunks(l.in_features) {
        for o in 0..l.out_features {
            let wrow = &w[o * l.in_features..(o + 1) * l.in_features];
            let dot: f64 = row.iter().zip(wrow).map(|(&a, &b)| a.to_f64() * b as f64).sum();
            y.push(E::from_f64(bias.map_or(0.0, |b| b[o] as f64) + dot));
        }
    }
    y
}

/// Applies `f` to every fibre along dimension 1 (for each batch element and each position
/// of the dimensions after 1) and writes the results back in place.
fn along_channels<E: Elem>(x: &[E], xs: &Shape, f: impl Fn(&[E]) -> Vec<E>) -> Vec<E> {
    let ch = xs.c();
    let inner: usize = xs.0[2..].iter().product();
    let mut y = vec![E::ZERO; x.len()];
    for b in 0..xs.0[0] {
        for s in 0..inner {
            let at = |c: usize| (b * ch + c) * inner + s;
            let fibre: Vec<E> = (0..ch).map(|c| x[at(c)]).collect();
            for (c, v) in f(&fibre).into_iter().enumerate() {
                y[at(c)] = v;
            }
        }
    }
    y
}

#[cfg(test)]
// Expected values are pasted exactly as PyTorch printed them (as f64).
#[allow(clippy::excessive_precision)]
mod tests {
    use super::*;
    use crate::ir::{Epilogue, Pad};
    use crate::weights::Tensor;
    use crate::weights::tests::{add, conv, with_input};

    /// Runs a one-output graph.
    fn run1(g: &Graph, w: &Weights, x: &[f32]) -> Vec<f32> {
        let mut out = run(g, w, &[x]).unwrap();
        assert_eq!(out.len(), 1);
        out.remove(0).2
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
    fn conv_with_padding_stride_groups_and_bias() {
        // x = torch.tensor([float(i % 7 - 3) for i in range(4*5*5)]).reshape(1,4,5,5)
        // w = torch.tensor([((i*3) % 5 - 2) * 0.5 for i in range(4*2*3*3)]).reshape(4,2,3,3)
        // b = torch.tensor([0.5, -1.0, 0.25, 2.0])
        // F.conv2d(x, w, b, stride=2, padding=1, groups=2)
        // (all values are small multiples of 1/4, so every sum is exact in f32 and f64)
        let g = single(conv_op(4, 4, [3, 3], 2, Pad::all(1), 2, true), Shape::nchw(4, 5, 5));
        let mut w = Weights::new();
        w.insert("conv.weight", t(&[4, 2, 3, 3], ramp(72, |i| ((i * 3) % 5) as f32 * 0.5 - 1.0)));
        w.insert("conv.bias", t(&[4], vec![0.5, -1.0, 0.25, 2.0]));
        let out = run(&g, &w, &[&ramp(100, |i| (i % 7) as f32 - 3.0)]).unwrap();
        assert_eq!(out[0].1, Shape::nchw(4, 3, 3));
        #[rustfmt::skip]
        let expected = [
            5.0, 1.0, -1.0, -3.5, -8.0, 4.0, 2.5, 2.5, -4.0,
            -2.5, -0.5, 3.5, -6.0, 14.5, -1.5, -3.0, -10.5, -5.0,
            2.75, 7.75, -0.25, -9.25, -9.75, -0.25, 3.75, 10.25, -3.25,
            5.5, 5.5, 7.0, -7.5, 5.0, 3.5, 4.5, -3.5, -1.5,
        ];
        assert_eq!(out[0].2, expected);
    }

    #[test]
    fn conv_with_a_1x3_kernel_and_width_padding() {
        // x = torch.arange(12.).reshape(1,1,3,4); w = torch.tensor([1., -1., 2., 0.5, 0., -2.]).reshape(2,1,1,3)
        // F.conv2d(x, w, padding=(0,1))
        let g = single(conv_op(1, 2, [1, 3], 1, Pad::hw(0, 1), 1, false), Shape::nchw(1, 3, 4));
        let mut w = Weights::new();
        w.insert("conv.weight", t(&[2, 1, 1, 3], vec![1.0, -1.0, 2.0, 0.5, 0.0, -2.0]));
        #[rustfmt::skip]
        let expected = [
            2.0, 3.0, 5.0, -1.0, 6.0, 11.0, 13.0, -1.0, 10.0, 19.0, 21.0, -1.0,
            -2.0, -4.0, -5.5, 1.0, -10.0, -10.0, -11.5, 3.0, -18.0, -16.0, -17.5, 5.0,
        ];
        assert_eq!(run1(&g, &w, &ramp(12, |i| i as f32)), expected);
    }

    #[test]
    fn conv_with_padding_that_differs_per_side() {
        // x = torch.arange(12.).reshape(1,1,3,4); w = torch.tensor([1., 2., 3., 4.]).reshape(1,1,2,2)
        // F.conv2d(F.pad(x, (1, 0, 0, 1)), w, stride=2)     # left 1, right 0, top 0, bottom 1
        let pad = Pad { top: 0, bottom: 1, left: 1, right: 0 };
        let g = single(conv_op(1, 1, [2, 2], 2, pad, 1, false), Shape::nchw(1, 3, 4));
        let mut w = Weights::new();
        w.insert("conv.weight", t(&[1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]));
        assert_eq!(run1(&g, &w, &ramp(12, |i| i as f32)), [16.0, 44.0, 16.0, 29.0]);
    }

    #[test]
    fn max_pool_in_ceil_mode_clips_the_last_window() {
        // x = torch.tensor([float((i * 7) % 11) for i in range(36)]).reshape(1,1,6,6)
        // F.max_pool2d(x, 3, 2, ceil_mode=True)             # 3x3 (floor mode: 2x2)
        let g = single(pool_op(PoolKind::Max, 3, 2, Pad::default(), true, true), Shape::nchw(1, 6, 6));
        let y = run(&g, &Weights::new(), &[&ramp(36, |i| ((i * 7) % 11) as f32)]).unwrap();
        assert_eq!(y[0].1, Shape::nchw(1, 3, 3));
        assert_eq!(y[0].2, [10.0, 10.0, 9.0, 10.0, 10.0, 9.0, 10.0, 9.0, 9.0]);
    }

    #[test]
    fn max_pool_padding_never_wins() {
        // F.max_pool2d(-1.0 - torch.arange(16.).reshape(1,1,4,4), 3, 2, padding=1)
        let g = single(pool_op(PoolKind::Max, 3, 2, Pad::all(1), false, true), Shape::nchw(1, 4, 4));
        assert_eq!(run1(&g, &Weights::new(), &ramp(16, |i| -1.0 - i as f32)), [-1.0, -2.0, -5.0, -6.0]);
    }

    #[test]
    fn nan_propagates_through_max_pool_and_relu() {
        // torch.relu(torch.tensor(float('nan'))) and F.max_pool2d over a NaN are NaN.
        let g = single(pool_op(PoolKind::Max, 2, 2, Pad::default(), false, true), Shape::nchw(1, 2, 2));
        assert!(run1(&g, &Weights::new(), &[1.0, f32::NAN, 3.0, 2.0])[0].is_nan());
        let g = single(Op::Relu, Shape::flat(3));
        let y = run1(&g, &Weights::new(), &[-1.0, f32::NAN, 2.0]);
        assert!(y[0] == 0.0 && y[1].is_nan() && y[2] == 2.0);
    }

    #[test]
    fn avg_pool_counts_padding_only_when_asked() {
        // x = torch.arange(16.).reshape(1,1,4,4)
        // F.avg_pool2d(x, 3, 2, padding=1, count_include_pad=True / False)
        let x = ramp(16, |i| i as f32);
        let incl = single(pool_op(PoolKind::Avg, 3, 2, Pad::all(1), false, true), Shape::nchw(1, 4, 4));
        close(
            &run1(&incl, &Weights::new(), &x),
            &[1.1111111640930176, 2.6666667461395264, 5.666666507720947, 10.0],
            1e-7,
        );
        let excl = single(pool_op(PoolKind::Avg, 3, 2, Pad::all(1), false, false), Shape::nchw(1, 4, 4));
        assert_eq!(run1(&excl, &Weights::new(), &x), [2.5, 4.0, 8.5, 10.0]);
    }

    #[test]
    fn avg_pool_in_ceil_mode_divides_by_the_window_clipped_to_the_padded_input() {
        // F.avg_pool2d(torch.arange(36.).reshape(1,1,6,6), 3, 2, padding=1, ceil_mode=True,
        //              count_include_pad=True)
        // The last window (rows 5..8 of the input) is clipped to row 7 = 6 + padding: it
        // divides 35 by 2x2, not by 3x3 (the full window) nor 1x1 (the real elements).
        let g = single(pool_op(PoolKind::Avg, 3, 2, Pad::all(1), true, true), Shape::nchw(1, 6, 6));
        #[rustfmt::skip]
        let expected = [
            1.5555555820465088, 3.3333332538604736, 4.666666507720947, 2.6666667461395264,
            8.333333015441895, 14.0, 16.0, 8.5,
            16.33333396911621, 26.0, 28.0, 14.5,
            10.166666984558105, 16.0, 17.0, 8.75,
        ];
        close(&run1(&g, &Weights::new(), &ramp(36, |i| i as f32)), &expected, 1e-7);
        // F.avg_pool2d(torch.arange(25.).reshape(1,1,5,5), 2, 2, ceil_mode=True,
        //              count_include_pad=True) == the same with False: no padding to count.
        let g = single(pool_op(PoolKind::Avg, 2, 2, Pad::default(), true, true), Shape::nchw(1, 5, 5));
        let expected = [3.0, 5.0, 6.5, 13.0, 15.0, 16.5, 20.5, 22.5, 24.0];
        assert_eq!(run1(&g, &Weights::new(), &ramp(25, |i| i as f32)), expected);
    }

    #[test]
    fn avg_pool_with_padding_after_only() {
        // TensorFlow SAME on 3x3 with a 2x2 window, stride 2: one padding row below and one
        // column to the right. By hand, on x = 0..9 (rows [0 1 2] [3 4 5] [6 7 8]):
        //   window (0,0): 0+1+3+4 = 8 over 4 real elements
        //   window (0,1): 2+5 = 7, 2 real elements, the window is 2x2 within the padded input
        //   window (1,0): 6+7 = 13; window (1,1): 8, 1 real element
        let pad = Pad { top: 0, bottom: 1, left: 0, right: 1 };
        let x = ramp(9, |i| i as f32);
        let incl = single(pool_op(PoolKind::Avg, 2, 2, pad, false, true), Shape::nchw(1, 3, 3));
        assert_eq!(run1(&incl, &Weights::new(), &x), [2.0, 1.75, 3.25, 2.0]);
        let excl = single(pool_op(PoolKind::Avg, 2, 2, pad, false, false), Shape::nchw(1, 3, 3));
        assert_eq!(run1(&excl, &Weights::new(), &x), [2.0, 3.5, 6.5, 8.0]);
    }

    #[test]
    fn lrn_windows_are_centred_and_zero_padded() {
        // x = torch.tensor([float(i % 5 - 2) * 0.75 + 0.1 * i for i in range(10)]).reshape(1,5,1,2)
        // torch.nn.LocalResponseNorm(size, alpha=0.3, beta=0.75, k=2.0)(x) for size 3 and 4
        let x = ramp(10, |i| ((i % 5) as f32 - 2.0) * 0.75 + 0.1 * i as f32);
        let lrn = |size| Op::Lrn(Lrn { size, alpha: 0.3, beta: 0.75, k: 2.0 });
        #[rustfmt::skip]
        let size3 = [
            -0.8222591280937195, -0.3657682538032532, 0.09796144813299179, 0.5710717439651489, 0.9955670237541199,
            -0.5426587462425232, -0.07318516820669174, 0.33004501461982727, 0.8458285331726074, 1.1637623310089111,
        ];
        #[rustfmt::skip]
        let size4 = [
            -0.8384629487991333, -0.3707036077976227, 0.10236560553312302, 0.5833768248558044, 0.9719696640968323,
            -0.5487036108970642, -0.07646623998880386, 0.3392913043498993, 0.7908758521080017, 1.1915313005447388,
        ];
        close(&run1(&single(lrn(3), Shape::nchw(5, 1, 2)), &Weights::new(), &x), &size3, 1e-6);
        close(&run1(&single(lrn(4), Shape::nchw(5, 1, 2)), &Weights::new(), &x), &size4, 1e-6);
    }

    #[test]
    fn batch_norm_adds_eps_to_the_variance_on_maps_and_vectors() {
        // x = torch.tensor([i * 0.25 - 1.0 for i in range(12)]).reshape(1,2,2,3)
        // F.batch_norm(x, mean=[0.1, -0.2], var=[0.001, 0.5], weight=[1.1, 0.9],
        //              bias=[-0.05, 0.05], training=False, eps=1e-3), and on x[:, :, 0, 0]
        let mut w = Weights::new();
        w.insert("bn.weight", t(&[2], vec![1.1, 0.9]));
        w.insert("bn.bias", t(&[2], vec![-0.05, 0.05]));
        w.insert("bn.running_mean", t(&[2], vec![0.1, -0.2]));
        w.insert("bn.running_var", t(&[2], vec![0.001, 0.5]));
        let bn = || Op::BatchNorm(BatchNorm { channels: 2, eps: 1e-3, key: "bn".into() });
        let x = ramp(12, |i| i as f32 * 0.25 - 1.0);
        #[rustfmt::skip]
        let expected = [
            -27.106422424316406, -20.95723533630371, -14.808049201965332, -8.658862113952637,
            -2.5096747875213623, 3.639512300491333, 0.9400649070739746, 1.2579452991485596,
            1.575825572013855, 1.89370596408844, 2.2115862369537354, 2.5294666290283203,
        ];
        close(&run1(&single(bn(), Shape::nchw(2, 2, 3)), &w, &x), &expected, 1e-6);
        close(&run1(&single(bn(), Shape::flat(2)), &w, &[x[0], x[6]]), &[expected[0], expected[6]], 1e-6);
    }

    #[test]
    fn l2_norm_divides_by_the_norm_or_eps() {
        // F.normalize(torch.tensor([[3., -4., 0., 12.]]), dim=1, eps=1e-12)
        let g = single(Op::L2Norm { eps: 1e-12 }, Shape::flat(4));
        let expected = [0.23076923191547394, -0.3076923191547394, 0.0, 0.9230769276618958];
        close(&run1(&g, &Weights::new(), &[3.0, -4.0, 0.0, 12.0]), &expected, 1e-7);
        // F.normalize(torch.tensor([[3e-13, -4e-13]]), dim=1, eps=1e-12): the norm 5e-13 < eps
        let g = single(Op::L2Norm { eps: 1e-12 }, Shape::flat(2));
        close(&run1(&g, &Weights::new(), &[3e-13, -4e-13]), &[0.29999998211860657, -0.4000000059604645], 1e-6);
    }

    #[test]
    fn softmax_is_stable_for_large_logits() {
        // F.softmax(torch.tensor([[1., 2., 3., -1.]]), dim=1), and the same plus 1000
        let g = single(Op::Softmax, Shape::flat(4));
        let expected = [0.08894681185483932, 0.2417825162410736, 0.6572329998016357, 0.012037642300128937];
        close(&run1(&g, &Weights::new(), &[1.0, 2.0, 3.0, -1.0]), &expected, 1e-6);
        close(&run1(&g, &Weights::new(), &[1001.0, 1002.0, 1003.0, 999.0]), &expected, 1e-6);
    }

    /// Three inputs `a`, `b`, `c`; outputs `sum = a + 0.5 * c`, `cat = concat(b, a)` and `a`.
    #[test]
    fn concat_in_operand_order_add_with_scale_and_several_outputs() {
        let mut g = Graph::new("two");
        let a = g.add(Op::Input, Shape::nchw(1, 2, 2), Default::default(), "a", &[]);
        let b = g.add(Op::Input, Shape::nchw(2, 2, 2), Default::default(), "b", &[]);
        let c = g.add(Op::Input, Shape::nchw(1, 2, 2), Default::default(), "c", &[]);
        g.inputs = vec![a, b, c];
        let cat = add(&mut g, Op::Concat, &[b, a]);
        let sum = add(&mut g, Op::Add { scale: 0.5 }, &[a, c]);
        g.outputs = vec![("sum".into(), sum), ("cat".into(), cat), ("a".into(), a)];
        let xa = [1.0, 2.0, 3.0, 4.0];
        let xb = ramp(8, |i| 5.0 + i as f32);
        let xc = [10.0, -2.0, 0.5, 0.0];
        let out = run(&g, &Weights::new(), &[&xa, &xb, &xc]).unwrap();
        let names: Vec<&str> = out.iter().map(|o| o.0.as_str()).collect();
        assert_eq!(names, ["sum", "cat", "a"]);
        assert_eq!(out[0].2, [6.0, 1.0, 3.25, 4.0]);
        assert_eq!(out[1].1, Shape::nchw(3, 2, 2));
        assert_eq!(out[1].2, [5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(out[2].2, xa);
    }

    #[test]
    fn global_pool_flatten_linear_relu_dropout() {
        // By hand: channel means 2.5 and -3; W = [[1, 0], [0, 1], [1, 1]], b = [0, 0.5, -1]
        // gives [2.5, -2.5, -1.5]; relu gives [2.5, 0, 0].
        let (mut g, x) = with_input(Shape::nchw(2, 2, 2));
        let p = add(&mut g, Op::GlobalAvgPool, &[x]);
        let f = add(&mut g, Op::Flatten, &[p]);
        let l = add(
            &mut g,
            Op::Linear(Linear { in_features: 2, out_features: 3, key: "fc".into(), bias: true, relu: false }),
            &[f],
        );
        let r = add(&mut g, Op::Relu, &[l]);
        let d = add(&mut g, Op::Dropout { p: 0.5 }, &[r]);
        g.outputs = vec![("logits".into(), l), ("y".into(), d)];
        let mut w = Weights::new();
        w.insert("fc.weight", t(&[3, 2], vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0]));
        w.insert("fc.bias", t(&[3], vec![0.0, 0.5, -1.0]));
        let out = run(&g, &w, &[&[1.0, 2.0, 3.0, 4.0, -1.0, -2.0, -3.0, -6.0]]).unwrap();
        assert_eq!(out[0].1, Shape::flat(3));
        assert_eq!(out[0].2, [2.5, -2.5, -1.5]);
        assert_eq!(out[1].2, [2.5, 0.0, 0.0]);
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
        let bits = |o: &[(String, Shape, Vec<f32>)]| -> Vec<Vec<u32>> {
            o.iter().map(|(_, _, v)| v.iter().map(|f| f.to_bits()).collect()).collect()
        };
        assert_eq!(bits(&a), bits(&b));
        assert!(a[0].2.contains(&0.0) && a[0].2.iter().any(|v| *v > 0.0), "relu is exercised");
    }

    /// Runs `g` in both modes on the same inputs and asserts that every output agrees within
    /// `tol` relative to the output's largest magnitude.
    fn f32_and_f64_agree(g: &Graph, w: &Weights, inputs: &[&[f32]], tol: f64) {
        let narrow = run(g, w, inputs).unwrap();
        let wide: Vec<Vec<f64>> = inputs.iter().map(|x| x.iter().map(|&v| v as f64).collect()).collect();
        let wide_refs: Vec<&[f64]> = wide.iter().map(Vec::as_slice).collect();
        let wide = run_f64(g, w, &wide_refs).unwrap();
        assert_eq!(narrow.len(), wide.len());
        for ((name, shape, a), (name64, shape64, b)) in narrow.iter().zip(&wide) {
            assert_eq!((name, shape), (name64, shape64));
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
        assert_eq!(narrow[0].2, [16777216.0, 16777216.0]);
        assert_eq!(narrow[1].2, [0.0]);
        let wide = run_f64(&g, &w, &[&[16777216.0, 1.0]]).unwrap();
        assert_eq!(wide[0].2, [16777217.0, 16777216.0]);
        assert_eq!(wide[1].2, [1.0]);
    }

    #[test]
    fn f64_mode_checks_its_inputs_too() {
        let g = single(Op::Relu, Shape::nchw(1, 2, 2));
        let e = run_f64(&g, &Weights::new(), &[&[1.0, 2.0, 3.0]]).unwrap_err();
        assert_eq!(e.to_string(), "input `x` must have shape 1x1x2x2, found 3 values");
        let y = run_f64(&g, &Weights::new(), &[&[-1.0, f64::NAN, 2.0, -0.0]]).unwrap();
        assert!(y[0].2[0] == 0.0 && y[0].2[1].is_nan() && y[0].2[2] == 2.0);
    }
}
