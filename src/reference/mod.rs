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
//! [`run_in`] with [`Precision::Bf16`] simulates bf16 arithmetic as `crate::ir::precision`
//! defines it: convolutions and fully connected layers round input and weights to bf16,
//! and sum the exact products as above.
//!
//! Weights and the scalar attributes of ops (batch-norm `eps`, residual scales, LRN
//! constants) are `f32` in the IR and [`Weights`]; the `f64` mode widens them exactly, so
//! it computes the network whose parameters are those `f32` values, in `f64` arithmetic.

mod conv;
mod norm;
mod pool;

use crate::error::{Error, Result};
use crate::ir::infer::infer;
use crate::ir::precision::bf16;
use crate::ir::{Graph, NodeId, Op, Output, Outputs, Precision, Shape};
use crate::weights::Weights;
use conv::{conv2d, linear};
use norm::{along_channels, batch_norm, lrn};
use pool::pool;
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
/// `weights`, returning each of [`Graph::outputs`] (name, shape, values), in order.
///
/// Errors: a wrong number of inputs ([`Error::Invalid`]), an input of the wrong length
/// ([`Error::InputShape`]), weights that are missing or mis-shaped ([`Error::Invalid`],
/// listing all of them), or a graph whose recorded shapes disagree with shape inference
/// ([`Error::Invalid`], a compiler bug).
pub fn run(graph: &Graph, weights: &Weights, inputs: &[&[f32]]) -> Result<Outputs> {
    run_as(graph, weights, inputs, Precision::F32)
}

/// [`run`] in the arithmetic of `precision` ([`crate::ir::precision`]): with
/// [`Precision::Bf16`], every convolution and fully connected layer rounds its input and its
/// weights to bf16 before its (exact) products; the sums are the same f64 sums rounded once
/// to f32, so a JIT summing in f32 differs from this only by its summation's rounding.
/// Errors as [`run`].
pub fn run_in(graph: &Graph, weights: &Weights, inputs: &[&[f32]], precision: Precision) -> Result<Outputs> {
    run_as(graph, weights, inputs, precision)
}

/// [`run`] with activations stored as `f64` instead of `f32`: the same ops, loops and
/// summation order, rounding to `f64` where [`run`] rounds to `f32`. Weights (`f32` in
/// [`Weights`]) and scalar attributes are widened exactly. Use it to compare against a
/// float64 run of the source model, where `f32` rounding, amplified through a deep
/// network, would hide the semantics being checked. Errors as [`run`].
pub fn run_f64(graph: &Graph, weights: &Weights, inputs: &[&[f64]]) -> Result<Outputs<f64>> {
    run_as(graph, weights, inputs, Precision::F32)
}

/// [`run`] for activations of element type `E`.
fn run_as<E: Elem>(graph: &Graph, weights: &Weights, inputs: &[&[E]], precision: Precision) -> Result<Outputs<E>> {
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
            eval(&node.op, &ins, &node.shape, weights, precision)?
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
            Ok(Output { name: name.clone(), shape: graph.node(*id).shape.clone(), data: v.clone() })
        })
        .collect()
}

/// One op on operands `ins` (shape, values), producing a tensor of shape `out`.
fn eval<E: Elem>(op: &Op, ins: &[(&Shape, &[E])], out: &Shape, w: &Weights, precision: Precision) -> Result<Vec<E>> {
    let Some(&(xs, x)) = ins.first() else {
        return Err(Error::Invalid(format!("{op} has no operands")));
    };
    // The operands of a product in bf16: input and weights rounded (module docs of
    // `crate::ir::precision`).
    let bf16_products = precision == Precision::Bf16 && matches!(op, Op::Conv2d(_) | Op::Linear(_));
    let rounded: Vec<E>;
    let x = if bf16_products {
        rounded = x.iter().map(|v| E::from_f64(bf16(v.to_f64() as f32) as f64)).collect();
        rounded.as_slice()
    } else {
        x
    };
    let weight = |key: &str| -> Result<std::borrow::Cow<'_, [f32]>> {
        let v = param(w, key, "weight")?;
        Ok(if bf16_products { v.iter().map(|&v| bf16(v)).collect() } else { std::borrow::Cow::Borrowed(v) })
    };
    Ok(match op {
        Op::Input => x.to_vec(),
        Op::Conv2d(c) => {
            let bias = if c.bias { Some(param(w, &c.key, "bias")?) } else { None };
            let mut y = conv2d(c, x, xs, out, &weight(&c.key)?, bias);
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
            let mut y = linear(l, x, &weight(&l.key)?, bias);
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

#[cfg(test)]
// Expected values are pasted exactly as PyTorch printed them (as f64).
#[allow(clippy::excessive_precision)]
mod tests;
