//! The closed set of IR operations, their attributes and their parameter tensors.

use super::shape::Pad;
use std::fmt;

/// One operation of the IR. The set is closed so that every `match` covers every op.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub enum Op {
    /// The network input (no operands).
    Input,
    /// 2-D convolution (NCHW, cross-correlation as in PyTorch).
    Conv2d(Conv2d),
    /// Batch normalisation with running statistics (inference form), on `[N,C,H,W]` or `[N,C]`.
    BatchNorm(BatchNorm),
    /// `max(x, 0)`.
    Relu,
    /// Max or average pooling over a 2-D window.
    Pool(Pool),
    /// Mean over H and W, keeping them as 1x1.
    GlobalAvgPool,
    /// Local response normalisation across channels (PyTorch `LocalResponseNorm`).
    Lrn(Lrn),
    /// Dropout: the identity at inference.
    Dropout {
        /// Drop probability (training only).
        p: f32,
    },
    /// `[N,C,H,W]` to `[N, C*H*W]`.
    Flatten,
    /// Fully connected layer on `[N, F]`.
    Linear(Linear),
    /// `x / max(||x||_2, eps)` along dimension 1 (PyTorch `F.normalize`).
    L2Norm {
        /// Lower bound of the norm.
        eps: f32,
    },
    /// Softmax along dimension 1.
    Softmax,
    /// Concatenation of all operands along channels (dimension 1), in operand order.
    Concat,
    /// `in0 + scale * in1` (the residual sum of Inception-ResNet).
    Add {
        /// Scale of the second operand.
        scale: f32,
    },
    /// Channels `start..start + len` of a feature map (made by `fuse-sibling-1x1`; a view
    /// for `N = 1` in NCHW).
    Slice {
        /// First channel taken.
        start: usize,
        /// Channels taken.
        len: usize,
    },
}

/// Attributes of a 2-D convolution.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Conv2d {
    /// Output channels.
    pub out_channels: usize,
    /// Input channels (the operand's channel count).
    pub in_channels: usize,
    /// Kernel `[kh, kw]`.
    pub kernel: [usize; 2],
    /// Stride `[sh, sw]`.
    pub stride: [usize; 2],
    /// Zero padding per side.
    pub pad: Pad,
    /// Channel groups; `in_channels` and `out_channels` are multiples of it.
    pub groups: usize,
    /// State-dict prefix of the weight `[out, in/groups, kh, kw]` (`<key>.weight`).
    pub key: String,
    /// Whether a bias `[out]` (`<key>.bias`) is added.
    pub bias: bool,
    /// Fused epilogue: `y = conv + bias`, then `y = operand1 + scale * y` when `Some(scale)`
    /// (the residual input is operand 1), then `max(y, 0)` when `relu`. Lowering leaves it
    /// empty; `fuse-activation` fills it.
    pub epilogue: Epilogue,
    /// `Some([mh, mw])`: computed by the Winograd transform `F(mh x mw, kh x kw)` (output
    /// tiles of `mh x mw` pixels) on the tiers that have it, set by `select-winograd`;
    /// `None`: directly.
    pub winograd: Option<[usize; 2]>,
}

impl Conv2d {
    /// The padded input extent `(hp, wp)` the convolution reads to produce an `oh x ow`
    /// output from an `h x w` input (see [`padded_extent`]).
    pub fn padded_input(&self, h: usize, w: usize, oh: usize, ow: usize) -> (usize, usize) {
        let p = &self.pad;
        padded_extent([h, w], [oh, ow], self.kernel, self.stride, [p.top, p.bottom, p.left, p.right])
    }
}

/// The padded extent `(hp, wp)` a window of `kernel` with `stride` reads to produce an `out`
/// map from an `inp` map with padding `[top, bottom, left, right]`: the padding, widened when
/// the last window overhangs (ceil mode). The runtime sizes padded buffers by it.
pub fn padded_extent(
    inp: [usize; 2],
    out: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    [top, bottom, left, right]: [usize; 4],
) -> (usize, usize) {
    let hp = (inp[0] + top + bottom).max((out[0] - 1) * stride[0] + kernel[0]);
    let wp = (inp[1] + left + right).max((out[1] - 1) * stride[1] + kernel[1]);
    (hp, wp)
}

/// What a convolution or linear layer does to its sums before storing them.
#[derive(Clone, Copy, Debug, PartialEq, Default, serde::Serialize)]
pub struct Epilogue {
    /// `Some(scale)`: add `scale * y` to operand 1 (the residual input).
    pub residual: Option<f32>,
    /// Apply ReLU last.
    pub relu: bool,
}

impl Epilogue {
    /// True when nothing is fused.
    pub fn is_empty(&self) -> bool {
        self.residual.is_none() && !self.relu
    }
}

/// Attributes of an inference batch norm.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BatchNorm {
    /// Channels normalised.
    pub channels: usize,
    /// Added to the variance.
    pub eps: f32,
    /// State-dict prefix: `<key>.weight`, `.bias`, `.running_mean`, `.running_var`.
    pub key: String,
}

/// Pooling kind.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum PoolKind {
    /// Maximum; padding never wins.
    Max,
    /// Average.
    Avg,
}

/// Attributes of a 2-D pooling window.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Pool {
    /// Max or average.
    pub kind: PoolKind,
    /// Window `[kh, kw]`.
    pub kernel: [usize; 2],
    /// Stride `[sh, sw]`.
    pub stride: [usize; 2],
    /// Implicit padding per side.
    pub pad: Pad,
    /// Round the output size up (PyTorch `ceil_mode`).
    pub ceil: bool,
    /// Average pools: divide by the whole window including padding (PyTorch
    /// `count_include_pad`); otherwise by the number of input elements covered.
    pub count_include_pad: bool,
}

/// Attributes of local response normalisation:
/// `b_c = a_c / (k + alpha/size * sum_{c' in window(c)} a_{c'}^2)^beta`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Lrn {
    /// Channels in the window (centred: `size/2` before, `(size-1)/2` after).
    pub size: usize,
    /// Scale.
    pub alpha: f32,
    /// Exponent.
    pub beta: f32,
    /// Additive constant.
    pub k: f32,
}

/// Attributes of a fully connected layer.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Linear {
    /// Input features.
    pub in_features: usize,
    /// Output features.
    pub out_features: usize,
    /// State-dict prefix of the weight `[out, in]`.
    pub key: String,
    /// Whether a bias `[out]` is added.
    pub bias: bool,
    /// Fused ReLU (`fuse-activation`).
    pub relu: bool,
}

/// What a parameter tensor is, for initialisation and for counting.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum ParamRole {
    /// Convolution or linear weight (He-normal initialisation).
    Weight,
    /// Additive bias.
    Bias,
    /// Batch-norm scale (gamma).
    BnWeight,
    /// Batch-norm shift (beta).
    BnBias,
    /// Batch-norm running mean (a buffer, not a trainable parameter).
    RunningMean,
    /// Batch-norm running variance (a buffer, not a trainable parameter).
    RunningVar,
}

impl ParamRole {
    /// True for tensors PyTorch counts in `parameters()` (not running statistics).
    pub fn is_trainable(self) -> bool {
        !matches!(self, ParamRole::RunningMean | ParamRole::RunningVar)
    }
}

/// One parameter tensor an op needs.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ParamSpec {
    /// Full state-dict key, e.g. `Mixed_5b.branch1x1.conv.weight`.
    pub key: String,
    /// Exact shape.
    pub shape: Vec<usize>,
    /// What it is.
    pub role: ParamRole,
    /// Fan-in, for He initialisation of weights.
    pub fan_in: usize,
}

impl Op {
    /// The parameter tensors of this op, in state-dict order.
    pub fn params(&self) -> Vec<ParamSpec> {
        let p = |key: &str, suffix: &str, shape: Vec<usize>, role, fan_in| ParamSpec {
            key: format!("{key}.{suffix}"),
            shape,
            role,
            fan_in,
        };
        match self {
            Op::Conv2d(c) => {
                let fan_in = c.in_channels / c.groups * c.kernel[0] * c.kernel[1];
                let mut v = vec![p(
                    &c.key,
                    "weight",
                    vec![c.out_channels, c.in_channels / c.groups, c.kernel[0], c.kernel[1]],
                    ParamRole::Weight,
                    fan_in,
                )];
                if c.bias {
                    v.push(p(&c.key, "bias", vec![c.out_channels], ParamRole::Bias, fan_in));
                }
                v
            }
            Op::BatchNorm(b) => vec![
                p(&b.key, "weight", vec![b.channels], ParamRole::BnWeight, 1),
                p(&b.key, "bias", vec![b.channels], ParamRole::BnBias, 1),
                p(&b.key, "running_mean", vec![b.channels], ParamRole::RunningMean, 1),
                p(&b.key, "running_var", vec![b.channels], ParamRole::RunningVar, 1),
            ],
            Op::Linear(l) => {
                let mut v =
                    vec![p(&l.key, "weight", vec![l.out_features, l.in_features], ParamRole::Weight, l.in_features)];
                if l.bias {
                    v.push(p(&l.key, "bias", vec![l.out_features], ParamRole::Bias, l.in_features));
                }
                v
            }
            _ => vec![],
        }
    }

    /// A short lower-case name of the op kind (`conv2d`, `max_pool`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Conv2d(_) => "conv2d",
            Op::BatchNorm(_) => "batch_norm",
            Op::Relu => "relu",
            Op::Pool(p) if p.kind == PoolKind::Max => "max_pool",
            Op::Pool(_) => "avg_pool",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::Lrn(_) => "lrn",
            Op::Dropout { .. } => "dropout",
            Op::Flatten => "flatten",
            Op::Linear(_) => "linear",
            Op::L2Norm { .. } => "l2_norm",
            Op::Softmax => "softmax",
            Op::Concat => "concat",
            Op::Add { .. } => "add",
            Op::Slice { .. } => "slice",
        }
    }
}

impl fmt::Display for Op {
    /// The op with its attributes, as `ir::print` writes it: `conv2d[64, 3x3, s2, p1, bias]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())?;
        match self {
            Op::Conv2d(c) => {
                write!(f, "[{}, {}x{}", c.out_channels, c.kernel[0], c.kernel[1])?;
                if c.stride != [1, 1] {
                    write_pair(f, "s", c.stride)?;
                }
                if !c.pad.is_zero() {
                    write!(f, ", p{}", c.pad)?;
                }
                if c.groups != 1 {
                    write!(f, ", g{}", c.groups)?;
                }
                if c.bias {
                    f.write_str(", bias")?;
                }
                if let Some(s) = c.epilogue.residual {
                    write!(f, ", residual {s:?}")?;
                }
                if c.epilogue.relu {
                    f.write_str(", relu")?;
                }
                if let Some([mh, mw]) = c.winograd {
                    write!(f, ", winograd {mh}x{mw}")?;
                }
                f.write_str("]")
            }
            Op::BatchNorm(b) => write!(f, "[eps {:?}]", b.eps),
            Op::Pool(p) => {
                write!(f, "[{}x{}", p.kernel[0], p.kernel[1])?;
                write_pair(f, "s", p.stride)?;
                if !p.pad.is_zero() {
                    write!(f, ", p{}", p.pad)?;
                }
                if p.ceil {
                    f.write_str(", ceil")?;
                }
                if p.kind == PoolKind::Avg && !p.count_include_pad {
                    f.write_str(", exclude_pad")?;
                }
                f.write_str("]")
            }
            Op::Lrn(l) => write!(f, "[size {}, alpha {:?}, beta {:?}, k {:?}]", l.size, l.alpha, l.beta, l.k),
            Op::Dropout { p } => write!(f, "[{p}]"),
            Op::Linear(l) => {
                write!(
                    f,
                    "[{}{}{}]",
                    l.out_features,
                    if l.bias { ", bias" } else { "" },
                    if l.relu { ", relu" } else { "" }
                )
            }
            Op::L2Norm { eps } => write!(f, "[eps {eps:?}]"),
            Op::Add { scale } if *scale != 1.0 => write!(f, "[scale {scale:?}]"),
            Op::Slice { start, len } => write!(f, "[{start}..{}]", start + len),
            _ => Ok(()),
        }
    }
}

fn write_pair(f: &mut fmt::Formatter<'_>, tag: &str, v: [usize; 2]) -> fmt::Result {
    if v[0] == v[1] { write!(f, ", {tag}{}", v[0]) } else { write!(f, ", {tag}{}x{}", v[0], v[1]) }
}
