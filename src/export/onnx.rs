//! ONNX export: an IR graph and its weights as an ONNX model (opset 17, IR version 8), the
//! weights stored as initializers named by their state-dict keys.
//!
//! Each IR op becomes one ONNX operator or a short fixed sequence, chosen so that the model
//! computes what [`crate::reference`] computes, up to the rounding of a different summation
//! order:
//!
//! | IR op | ONNX |
//! |---|---|
//! | `conv2d` | `Conv` (`pads` = `[top, left, bottom, right]`, strides, group, optional bias); a fused epilogue as `Mul`, `Add`, `Relu` |
//! | `batch_norm` | `BatchNormalization` (on `NxC` and `NxCxHxW`) |
//! | `relu`, `global_avg_pool`, `flatten` (axis 1), `concat` (axis 1), `softmax` (axis 1) | the operator of that name |
//! | `max_pool`, `avg_pool` | `MaxPool`, `AveragePool`, sometimes after a `Pad` (below) |
//! | `lrn` | `LRN`; for an even size `Mul`, `AveragePool`, `Pow` and `Div` (below) |
//! | `linear` | `Gemm` with `transB = 1`; a fused ReLU as `Relu` |
//! | `add[scale s]` | `Mul` by `s`, then `Add` (just `Add` when `s = 1`) |
//! | `l2_norm[eps]` | `ReduceL2` (axis 1, kept), `Max` with `eps`, `Div` |
//! | `slice[a..b]` | `Slice` of channels `a..b` (made by `fuse-sibling-1x1`) |
//! | `dropout` | `Identity` |
//!
//! Pooling never uses ONNX's `ceil_mode`, whose treatment of a last window that starts in the
//! padding has changed between ONNX and runtime versions. Instead the padding after the input
//! is set to what floor mode needs to produce exactly the IR's output size: the last window
//! ends where it ends in the IR. Max pooling and average pooling that excludes the padding
//! do not see the difference. Average pooling that counts the padding divides, in the IR, by
//! the window clipped to the *declared* padding; when a ceil-mode window runs past it (or a
//! pad is as large as the window, which ONNX Runtime refuses), the declared padding is written
//! as an explicit zero `Pad` and the pool then excludes the rest, which gives that divisor.
//!
//! LRN: the IR (PyTorch's `LocalResponseNorm`) sums the squares of channels
//! `c - size/2 ..= c + (size-1)/2`; ONNX's `LRN` sums `c - floor((size-1)/2) ..= c +
//! ceil((size-1)/2)`. The windows agree for odd sizes, and both divide `alpha` by `size`, so
//! an odd size is an `LRN`. For an even size the windows differ (and ONNX Runtime refuses an
//! even `LRN` anyway), so the formula is written out: the squares, as `[N, 1, C, H, W]`, go
//! through a 3-D `AveragePool` of `size x 1 x 1` that pads `size/2` channels before and
//! `(size-1)/2` after and counts them (the window mean, `sum / size`), then
//! `x / (k + alpha * mean)^beta`.
//!
//! L2 norm is `x / max(||x||, eps)`. ONNX's `LpNormalization` has no `eps`, so it is written
//! out as three operators.
//!
//! Names: initializers keep their state-dict keys, outputs their names, the input its name;
//! every other value is `<layer name>/<op kind>` (`Mixed_5b.branch1x1/conv2d`), made unique
//! with a numeric suffix. The batch dimension of the input and outputs is symbolic (`N`):
//! every operator used works on any batch, while the IR itself is built for `N = 1`.

use super::proto::{
    AttributeProto, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, TypeProtoTensor, ValueInfoProto, attribute_type, data_type,
};
use crate::error::{Error, Result};
use crate::ir::{Conv2d, Graph, Linear, Lrn, Node, NodeId, Op, Pool, PoolKind, Shape};
use crate::weights::Weights;
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;

/// The ONNX operator set version the model imports (default domain).
pub const OPSET: i64 = 17;
/// The ONNX IR version written (the one that introduced opset 17).
pub const IR_VERSION: i64 = 8;
/// The name of the symbolic batch dimension of the input and the outputs.
pub const BATCH: &str = "N";

/// What [`write()`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportStats {
    /// ONNX nodes in the graph.
    pub nodes: usize,
    /// Initializers (weight tensors and small constants).
    pub initializers: usize,
    /// Bytes of the file.
    pub bytes: usize,
}

/// The ONNX model of `graph` with `weights` as initializers.
///
/// Errors: weights missing or mis-shaped for `graph` ([`Error::Weights`] or
/// [`Error::Invalid`]); an output whose name is also a weight key, or an average pool whose
/// window can lie wholly in the padding while excluding it ([`Error::Export`]).
pub fn to_model(graph: &Graph, weights: &Weights) -> Result<ModelProto> {
    weights.check(graph)?;
    let mut b = Builder { network: graph.name.clone(), ..Builder::default() };
    // Initializers first, so that their names are exactly the state-dict keys.
    for spec in graph.params() {
        if b.names.insert(spec.key.clone()) {
            let t = weights.get(&spec.key).ok_or_else(|| Error::Invalid(format!("no weight tensor `{}`", spec.key)))?;
            b.initializers.push(float_tensor(&spec.key, &t.shape, &t.data));
        }
    }
    // Outputs keep their names; an output naming a value that already has a name (another
    // output's, or the input's) becomes an `Identity` of it.
    let mut value: HashMap<NodeId, String> = HashMap::new();
    let mut aliases = Vec::new();
    for (name, id) in &graph.outputs {
        if !b.names.insert(name.clone()) {
            return Err(export_error(format!("output `{name}` has the name of a weight tensor or of another output")));
        }
        if value.contains_key(id) || graph.inputs.contains(id) {
            aliases.push((name.clone(), *id));
        } else {
            value.insert(*id, name.clone());
        }
    }
    let mut inputs = Vec::new();
    for &id in &graph.inputs {
        let node = graph.node(id);
        let name = b.fresh(if node.name.is_empty() { "input" } else { &node.name });
        inputs.push(value_info(&name, &node.shape));
        value.insert(id, name);
    }
    for id in graph.topo_order() {
        let node = graph.node(id);
        if let Op::Input = node.op {
            if graph.inputs.contains(&id) {
                continue;
            }
            return Err(export_error(format!("node {id} `{}` is an input the graph does not list", node.name)));
        }
        let out = match value.get(&id) {
            Some(name) => name.clone(),
            None => {
                let kind = node.op.kind();
                let name =
                    b.fresh(&if node.name.is_empty() { kind.to_string() } else { format!("{}/{kind}", node.name) });
                value.insert(id, name.clone());
                name
            }
        };
        let operands = graph.operands(id);
        let xs = operands
            .iter()
            .map(|o| value.get(o).cloned().ok_or_else(|| Error::Invalid(format!("operand {o} of {id} has no value"))))
            .collect::<Result<Vec<_>>>()?;
        let x_shape = operands.first().map(|&o| &graph.node(o).shape);
        b.op(node, &xs, x_shape, out)?;
    }
    for (name, id) in aliases {
        b.node("Identity", vec![value[&id].clone()], name, vec![]);
    }
    let outputs = graph.outputs.iter().map(|(name, id)| value_info(name, &graph.node(*id).shape)).collect();
    Ok(ModelProto {
        ir_version: Some(IR_VERSION),
        producer_name: Some("incc".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: Some(format!("network `{}`, exported by incc", graph.name)),
        graph: Some(GraphProto {
            node: b.nodes,
            name: Some(graph.name.clone()),
            initializer: b.initializers,
            doc_string: None,
            input: inputs,
            output: outputs,
        }),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(OPSET) }],
    })
}

/// [`to_model`], serialised. Errors as [`to_model`], and [`Error::Export`] for a model over
/// protobuf's 2 GiB limit (incc does not write ONNX's external-data form).
pub fn to_bytes(graph: &Graph, weights: &Weights) -> Result<Vec<u8>> {
    encode(&to_model(graph, weights)?)
}

fn encode(model: &ModelProto) -> Result<Vec<u8>> {
    let len = model.encoded_len();
    if len > i32::MAX as usize {
        return Err(export_error(format!(
            "the model would be {len} bytes, over protobuf's limit of 2 GiB (external data is not supported)"
        )));
    }
    Ok(model.encode_to_vec())
}

/// Writes the ONNX model of `graph` with `weights` to `path`, atomically: on any error
/// `path` is left as it was. Errors as [`to_bytes`], and [`Error::Io`] for the file.
pub fn write(path: impl AsRef<Path>, graph: &Graph, weights: &Weights) -> Result<ExportStats> {
    let model = to_model(graph, weights)?;
    let (nodes, initializers) = model.graph.as_ref().map_or((0, 0), |g| (g.node.len(), g.initializer.len()));
    let bytes = encode(&model)?;
    drop(model);
    crate::npy::write_atomic(path.as_ref(), |w| w.write_all(&bytes))?;
    Ok(ExportStats { nodes, initializers, bytes: bytes.len() })
}

fn export_error(message: String) -> Error {
    Error::Export { format: "ONNX", message }
}

/// The graph under construction.
#[derive(Default)]
struct Builder {
    /// The network's name, for error messages.
    network: String,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    /// Every value name given out (initializers, inputs, node outputs).
    names: HashSet<String>,
    /// Constant tensors already made, by their content, so each is stored once.
    int_constants: HashMap<Vec<i64>, String>,
    float_constants: HashMap<u32, String>,
}

impl Builder {
    /// `base`, or `base_1`, `base_2`, ... : the first name not given out yet.
    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut n = 0;
        while !self.names.insert(name.clone()) {
            n += 1;
            name = format!("{base}_{n}");
        }
        name
    }

    /// Appends `op_type(inputs) -> output`; the node is named after its output.
    fn node(&mut self, op_type: &str, input: Vec<String>, output: String, attribute: Vec<AttributeProto>) {
        self.nodes.push(NodeProto {
            input,
            name: Some(output.clone()),
            output: vec![output],
            op_type: Some(op_type.into()),
            attribute,
            doc_string: None,
            domain: None,
        });
    }

    /// A fresh name for an intermediate value of the sequence that computes `out`.
    fn temp(&mut self, out: &str, what: &str) -> String {
        self.fresh(&format!("{out}/{what}"))
    }

    /// A 1-D `INT64` constant (the operands of `Pad` and `Slice`).
    fn ints(&mut self, values: &[i64]) -> String {
        if let Some(name) = self.int_constants.get(values) {
            return name.clone();
        }
        let text: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        let name = self.fresh(&format!("const_i64[{}]", text.join(",")));
        self.initializers.push(TensorProto {
            dims: vec![values.len() as i64],
            data_type: Some(data_type::INT64),
            int64_data: values.to_vec(),
            name: Some(name.clone()),
            ..Default::default()
        });
        self.int_constants.insert(values.to_vec(), name.clone());
        name
    }

    /// A 0-d `FLOAT` constant (scales and epsilons, broadcast by `Mul` and `Max`).
    fn scalar(&mut self, v: f32) -> String {
        if let Some(name) = self.float_constants.get(&v.to_bits()) {
            return name.clone();
        }
        let name = self.fresh(&format!("const_f32[{v:?}]"));
        self.initializers.push(float_tensor(&name, &[], &[v]));
        self.float_constants.insert(v.to_bits(), name.clone());
        name
    }

    /// The operators computing `node` from the values `xs` (the first of shape `x_shape`)
    /// into the value `out`.
    fn op(&mut self, node: &Node, xs: &[String], x_shape: Option<&Shape>, out: String) -> Result<()> {
        let (Some(x), Some(x_shape)) = (xs.first(), x_shape) else {
            return Err(Error::Invalid(format!("{} `{}` has no operands", node.op, node.name)));
        };
        let x = x.clone();
        match &node.op {
            Op::Input => return Err(Error::Invalid(format!("input `{}` inside the graph", node.name))),
            Op::Conv2d(c) => self.conv(c, xs, out),
            Op::BatchNorm(bn) => {
                let input = ["weight", "bias", "running_mean", "running_var"].map(|s| format!("{}.{s}", bn.key));
                let mut inputs = vec![x];
                inputs.extend(input);
                self.node("BatchNormalization", inputs, out, vec![float("epsilon", bn.eps)]);
            }
            Op::Relu => self.node("Relu", vec![x], out, vec![]),
            Op::Pool(p) => self.pool(p, x, x_shape, &node.shape, out, &node.name)?,
            Op::GlobalAvgPool => self.node("GlobalAveragePool", vec![x], out, vec![]),
            Op::Lrn(l) => self.lrn(l, x, out),
            Op::Dropout { .. } => self.node("Identity", vec![x], out, vec![]),
            Op::Flatten => self.node("Flatten", vec![x], out, vec![int("axis", 1)]),
            Op::Linear(l) => self.linear(l, x, out),
            Op::L2Norm { eps } => {
                let norm = self.temp(&out, "norm");
                self.node("ReduceL2", vec![x.clone()], norm.clone(), vec![ints("axes", &[1]), int("keepdims", 1)]);
                let eps = self.scalar(*eps);
                let divisor = self.temp(&out, "divisor");
                self.node("Max", vec![norm, eps], divisor.clone(), vec![]);
                self.node("Div", vec![x, divisor], out, vec![]);
            }
            Op::Softmax => self.node("Softmax", vec![x], out, vec![int("axis", 1)]),
            Op::Concat => self.node("Concat", xs.to_vec(), out, vec![int("axis", 1)]),
            Op::Add { scale } => {
                let y =
                    xs.get(1).cloned().ok_or_else(|| Error::Invalid(format!("add `{}` has one operand", node.name)))?;
                self.scaled_add(x, y, *scale, out);
            }
            Op::Slice { start, len } => {
                let inputs = vec![x, self.ints(&[*start as i64]), self.ints(&[(start + len) as i64]), self.ints(&[1])];
                self.node("Slice", inputs, out, vec![]);
            }
        }
        Ok(())
    }

    /// `Conv`, then the fused epilogue `relu?(residual + scale * y)` if any.
    fn conv(&mut self, c: &Conv2d, xs: &[String], out: String) {
        let mut inputs = vec![xs[0].clone(), format!("{}.weight", c.key)];
        if c.bias {
            inputs.push(format!("{}.bias", c.key));
        }
        let [kh, kw] = c.kernel.map(|k| k as i64);
        let attrs = vec![
            ints("kernel_shape", &[kh, kw]),
            ints("strides", &c.stride.map(|s| s as i64)),
            ints("pads", &[c.pad.top, c.pad.left, c.pad.bottom, c.pad.right].map(|p| p as i64)),
            ints("dilations", &[1, 1]),
            int("group", c.groups as i64),
        ];
        let residual = c.epilogue.residual.and_then(|s| xs.get(1).map(|r| (r.clone(), s)));
        if residual.is_none() && !c.epilogue.relu {
            return self.node("Conv", inputs, out, attrs);
        }
        let mut y = self.temp(&out, "conv");
        self.node("Conv", inputs, y.clone(), attrs);
        if let Some((r, scale)) = residual {
            let sum = if c.epilogue.relu { self.temp(&out, "sum") } else { out.clone() };
            self.scaled_add(r, y, scale, sum.clone());
            y = sum;
        }
        if c.epilogue.relu {
            self.node("Relu", vec![y], out, vec![]);
        }
    }

    /// `out = a + scale * b`, rounded as the IR rounds it (the product, then the sum).
    fn scaled_add(&mut self, a: String, b: String, scale: f32, out: String) {
        let b = if scale == 1.0 {
            b
        } else {
            let s = self.scalar(scale);
            let scaled = self.temp(&out, "scaled");
            self.node("Mul", vec![b, s], scaled.clone(), vec![]);
            scaled
        };
        self.node("Add", vec![a, b], out, vec![]);
    }

    /// `Gemm` with the weight transposed, then the fused ReLU if any.
    fn linear(&mut self, l: &Linear, x: String, out: String) {
        let mut inputs = vec![x, format!("{}.weight", l.key)];
        if l.bias {
            inputs.push(format!("{}.bias", l.key));
        }
        let attrs = vec![int("transB", 1)];
        if !l.relu {
            return self.node("Gemm", inputs, out, attrs);
        }
        let y = self.temp(&out, "gemm");
        self.node("Gemm", inputs, y.clone(), attrs);
        self.node("Relu", vec![y], out, vec![]);
    }

    /// `LRN` for an odd size; for an even size, which ONNX Runtime's `LRN` refuses and whose
    /// window ONNX places differently, the formula spelled out (see the module documentation).
    fn lrn(&mut self, l: &Lrn, x: String, out: String) {
        if l.size % 2 == 1 {
            let attrs =
                vec![int("size", l.size as i64), float("alpha", l.alpha), float("beta", l.beta), float("bias", l.k)];
            return self.node("LRN", vec![x], out, attrs);
        }
        let square = self.temp(&out, "square");
        self.node("Mul", vec![x.clone(), x.clone()], square.clone(), vec![]);
        // Channels become a spatial axis of a 3-D pool over [N, 1, C, H, W].
        let axis = self.ints(&[1]);
        let volume = self.temp(&out, "volume");
        self.node("Unsqueeze", vec![square, axis.clone()], volume.clone(), vec![]);
        let (size, before, after) = (l.size as i64, (l.size / 2) as i64, ((l.size - 1) / 2) as i64);
        let mean = self.temp(&out, "mean");
        let attrs = vec![
            ints("kernel_shape", &[size, 1, 1]),
            ints("strides", &[1, 1, 1]),
            ints("pads", &[before, 0, 0, after, 0, 0]),
            int("count_include_pad", 1),
        ];
        self.node("AveragePool", vec![volume], mean.clone(), attrs);
        let mean_map = self.temp(&out, "mean_map");
        self.node("Squeeze", vec![mean, axis], mean_map.clone(), vec![]);
        let scaled = self.temp(&out, "scaled");
        let alpha = self.scalar(l.alpha);
        self.node("Mul", vec![mean_map, alpha], scaled.clone(), vec![]);
        let base = self.temp(&out, "base");
        let k = self.scalar(l.k);
        self.node("Add", vec![scaled, k], base.clone(), vec![]);
        let divisor = self.temp(&out, "divisor");
        let beta = self.scalar(l.beta);
        self.node("Pow", vec![base, beta], divisor.clone(), vec![]);
        self.node("Div", vec![x, divisor], out, vec![]);
    }

    /// Max or average pooling of `x` (shape `xs`) to the IR's output shape `ys`, in floor
    /// mode (see the module documentation).
    fn pool(&mut self, p: &Pool, x: String, xs: &Shape, ys: &Shape, out: String, name: &str) -> Result<()> {
        let k = p.kernel;
        let before = [p.pad.top, p.pad.left];
        let after = [p.pad.bottom, p.pad.right];
        // The padding after the input at which the last of the IR's windows ends: with it,
        // floor mode produces exactly the IR's output size.
        let n = [xs.h(), xs.w()];
        let o = [ys.h(), ys.w()];
        let end = [0, 1].map(|d| ((o[d] - 1) * p.stride[d] + k[d]).saturating_sub(n[d] + before[d]));
        let window = [ints("kernel_shape", &k.map(|v| v as i64)), ints("strides", &p.stride.map(|v| v as i64))];
        let pads = |b: [usize; 2], a: [usize; 2]| ints("pads", &[b[0], b[1], a[0], a[1]].map(|v| v as i64));
        let fits = |b: [usize; 2], a: [usize; 2]| (0..2).all(|d| b[d] < k[d] && a[d] < k[d]);
        match p.kind {
            PoolKind::Max => {
                // Shape inference keeps max-pool padding at most half the window.
                let mut attrs = window.to_vec();
                attrs.push(pads(before, end));
                self.node("MaxPool", vec![x], out, attrs);
            }
            PoolKind::Avg if !p.count_include_pad => {
                if !fits(before, end) {
                    return Err(export_error(format!(
                        "network `{}`, layer `{name}`: average pool {}x{} with padding {} excludes the padding, \
                         and a window can lie wholly in it (ONNX Runtime refuses such padding)",
                        self.network, k[0], k[1], p.pad
                    )));
                }
                let mut attrs = window.to_vec();
                attrs.extend([pads(before, end), int("count_include_pad", 0)]);
                self.node("AveragePool", vec![x], out, attrs);
            }
            PoolKind::Avg if fits(before, end) && (0..2).all(|d| end[d] <= after[d]) => {
                // Every window lies within the declared padding: it counts in full.
                let mut attrs = window.to_vec();
                attrs.extend([pads(before, end), int("count_include_pad", 1)]);
                self.node("AveragePool", vec![x], out, attrs);
            }
            PoolKind::Avg => {
                // The declared padding (as far as a window reaches) as zeros that count,
                // then whatever floor mode needs beyond it, excluded from the divisor.
                let kept = [0, 1].map(|d| after[d].min(end[d]));
                let padded = self.temp(&out, "padded");
                let amounts = [0, 0, before[0], before[1], 0, 0, kept[0], kept[1]].map(|v| v as i64);
                let inputs = vec![x, self.ints(&amounts)];
                self.node("Pad", inputs, padded.clone(), vec![]);
                let mut attrs = window.to_vec();
                attrs.extend([pads([0, 0], [0, 1].map(|d| end[d] - kept[d])), int("count_include_pad", 0)]);
                self.node("AveragePool", vec![padded], out, attrs);
            }
        }
        Ok(())
    }
}

/// A `FLOAT` tensor named `name`, its values as little-endian `raw_data`.
fn float_tensor(name: &str, shape: &[usize], data: &[f32]) -> TensorProto {
    TensorProto {
        dims: shape.iter().map(|&d| d as i64).collect(),
        data_type: Some(data_type::FLOAT),
        name: Some(name.into()),
        raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

/// A `FLOAT` tensor value of `shape` whose first dimension is the symbolic batch.
fn value_info(name: &str, shape: &Shape) -> ValueInfoProto {
    let dim = shape
        .0
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            if i == 0 {
                Dimension { dim_value: None, dim_param: Some(BATCH.into()) }
            } else {
                Dimension { dim_value: Some(d as i64), dim_param: None }
            }
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: Some(data_type::FLOAT),
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    }
}

fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: Some(name.into()), i: Some(i), r#type: Some(attribute_type::INT), ..Default::default() }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        ints: v.to_vec(),
        r#type: Some(attribute_type::INTS),
        ..Default::default()
    }
}

fn float(name: &str, f: f32) -> AttributeProto {
    AttributeProto { name: Some(name.into()), f: Some(f), r#type: Some(attribute_type::FLOAT), ..Default::default() }
}
