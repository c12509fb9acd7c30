//! Lowering one node to kernel calls: a function per op kind.

use super::conv::{ConvIn, ConvWeight, conv, dense_conv_weight};
use super::planner::{Planner, param};
use super::{ArenaOffset, Arg, BB, Compact, Helper, c_pix, cpad};
use crate::error::{Error, Result};
use crate::ir::layout::BLOCK;
use crate::ir::{BatchNorm, Conv2d, Graph, Linear, Lrn, Node, NodeId, Op, Pool, PoolKind, Shape};
use crate::target::codegen::kernel::{ChannelOp, KernelSpec};
use crate::weights::Weights;
use std::collections::HashMap;

/// What lowering one node sees: the node, where its operands and output live.
pub(super) struct NodeCx<'a> {
    pub graph: &'a Graph,
    pub id: NodeId,
    pub node: &'a Node,
    pub ops: &'a [NodeId],
    /// Arena byte offset of each operand (`None`: not planned, a compiler bug).
    pub ins: Vec<Option<ArenaOffset>>,
    /// Arena byte offset of the output.
    pub out: ArenaOffset,
    /// The network inputs stored compact.
    pub compact: &'a HashMap<NodeId, Compact>,
    /// The operands written in place into their concat: operand -> (concat, byte offset).
    pub placed: &'a HashMap<NodeId, (NodeId, usize)>,
}

impl NodeCx<'_> {
    /// Arena offset of operand `i`.
    pub fn input(&self, i: usize) -> Result<ArenaOffset> {
        operand(&self.ins, i, self.id, self.node)
    }

    /// Shape of operand `i`.
    pub fn in_shape(&self, i: usize) -> Result<&Shape> {
        operand_shape(self.graph, self.ops, i, self.id, self.node)
    }

    /// Channels and pixels of the output.
    pub fn out_c_pix(&self) -> (usize, usize) {
        c_pix(&self.node.shape)
    }
}

/// Entry `i` of a node's resolved operands (`None`: not planned, a compiler bug).
pub(super) fn operand<T: Copy>(resolved: &[Option<T>], i: usize, id: NodeId, node: &Node) -> Result<T> {
    resolved
        .get(i)
        .copied()
        .flatten()
        .ok_or_else(|| Error::Invalid(format!("operand {i} of {id} `{}` was not planned", node.name)))
}

/// Shape of operand `i` of `node`.
pub(super) fn operand_shape<'g>(
    graph: &'g Graph,
    ops: &[NodeId],
    i: usize,
    id: NodeId,
    node: &Node,
) -> Result<&'g Shape> {
    ops.get(i)
        .map(|&o| &graph.node(o).shape)
        .ok_or_else(|| Error::Invalid(format!("{id} `{}` lacks operand {i}", node.name)))
}

/// Appends the steps computing `cx.node` to `p`.
pub(super) fn node<'w>(p: &mut Planner<'w>, cx: &NodeCx, weights: &'w Weights) -> Result<()> {
    match &cx.node.op {
        Op::Input | Op::Dropout { .. } => Ok(()),
        Op::Conv2d(c) => conv2d(p, cx, weights, c),
        Op::Linear(l) => linear(p, cx, weights, l),
        Op::BatchNorm(bn) => batch_norm(p, cx, weights, bn),
        Op::Relu => relu(p, cx),
        Op::Add { scale } => add(p, cx, *scale),
        Op::Pool(pl) => pool(p, cx, pl),
        Op::GlobalAvgPool => global_avg_pool(p, cx),
        Op::Lrn(l) => lrn(p, cx, l),
        Op::L2Norm { .. } | Op::Softmax => along_channels(p, cx),
        Op::Flatten => flatten(p, cx),
        Op::Slice { start, len } => slice(p, cx, (*start, *len)),
        Op::Concat => concat(p, cx),
    }
}

/// A convolution: its weights, bias and residual, on the convolution strategy of [`conv`].
fn conv2d<'w>(p: &mut Planner<'w>, cx: &NodeCx, weights: &'w Weights, c: &Conv2d) -> Result<()> {
    let out = cx.out;
    let xs = cx.in_shape(0)?;
    let weight = if c.groups > 1 {
        ConvWeight::Values(dense_conv_weight(c, param(weights, &c.key, "weight")?))
    } else {
        ConvWeight::tensor(weights, &c.key)?
    };
    let bias = if c.bias { Some(param(weights, &c.key, "bias")?) } else { None };
    let res = match c.epilogue.residual {
        Some(_) => Some(Arg::Arena(cx.input(1)?)),
        None => None,
    };
    let src = cx.input(0)?;
    let src_compact = cx.ops.first().is_some_and(|o| cx.compact.contains_key(o));
    conv(
        p,
        ConvIn {
            src,
            src_compact,
            c: c.in_channels,
            h: xs.h(),
            w: xs.w(),
            kernel: c.kernel,
            stride: c.stride,
            pad: [c.pad.top, c.pad.bottom, c.pad.left, c.pad.right],
            oc: c.out_channels,
            oh: cx.node.shape.h(),
            ow: cx.node.shape.w(),
            weight,
            bias,
            residual: c.epilogue.residual.zip(res),
            relu: c.epilogue.relu,
            out,
            winograd: c.winograd,
        },
    )?;
    Ok(())
}

/// A fully connected layer, as a 1x1 convolution of a 1x1 map.
fn linear<'w>(p: &mut Planner<'w>, cx: &NodeCx, weights: &'w Weights, l: &Linear) -> Result<()> {
    let out = cx.out;
    let bias = if l.bias { Some(param(weights, &l.key, "bias")?) } else { None };
    let src = cx.input(0)?;
    conv(
        p,
        ConvIn {
            src,
            src_compact: false,
            c: l.in_features,
            h: 1,
            w: 1,
            kernel: [1, 1],
            stride: [1, 1],
            pad: [0; 4],
            oc: l.out_features,
            oh: 1,
            ow: 1,
            weight: ConvWeight::tensor(weights, &l.key)?,
            bias,
            residual: None,
            relu: l.relu,
            out,
            winograd: None,
        },
    )?;
    Ok(())
}

/// A batch norm left unfolded: one affine kernel with its scale and shift.
fn batch_norm<'w>(p: &mut Planner<'w>, cx: &NodeCx, weights: &'w Weights, bn: &BatchNorm) -> Result<()> {
    let (oc, opix) = cx.out_c_pix();
    let out = cx.out;
    let g = param(weights, &bn.key, "weight")?;
    let be = param(weights, &bn.key, "bias")?;
    let m = param(weights, &bn.key, "running_mean")?;
    let v = param(weights, &bn.key, "running_var")?;
    let mut s = vec![0.0f32; cpad(oc)];
    let mut t = vec![0.0f32; cpad(oc)];
    for ch in 0..oc {
        let inv = g[ch] / (v[ch] + bn.eps).sqrt();
        s[ch] = inv;
        t[ch] = be[ch] - m[ch] * inv;
    }
    let (sa, ta) = (p.param(&s), p.param(&t));
    let src = cx.input(0)?;
    p.kernel(
        KernelSpec::Affine { cb: cpad(oc) / BLOCK, pix: opix },
        vec![Arg::Arena(out), Arg::Arena(src), sa, ta],
        (2 * cpad(oc) * opix) as u64,
    );
    Ok(())
}

/// A ReLU left unfused.
fn relu<'w>(p: &mut Planner<'w>, cx: &NodeCx) -> Result<()> {
    let (oc, opix) = cx.out_c_pix();
    let out = cx.out;
    let src = cx.input(0)?;
    let n = cpad(oc) * opix / 4;
    p.kernel(KernelSpec::Relu { n }, vec![Arg::Arena(out), Arg::Arena(src)], 4 * n as u64);
    Ok(())
}

/// A residual sum `a + scale * b` left unfused.
fn add<'w>(p: &mut Planner<'w>, cx: &NodeCx, scale: f32) -> Result<()> {
    let (oc, opix) = cx.out_c_pix();
    let out = cx.out;
    let a = cx.input(0)?;
    let b = cx.input(1)?;
    let n = cpad(oc) * opix / 4;
    p.kernel(
        KernelSpec::Add { n, scale: scale.to_bits() },
        vec![Arg::Arena(out), Arg::Arena(a), Arg::Arena(b)],
        8 * n as u64,
    );
    Ok(())
}

/// Max or average pooling, after a padding step where the window leaves the map; an average divides by a precomputed count per output pixel.
fn pool<'w>(p: &mut Planner<'w>, cx: &NodeCx, pl: &Pool) -> Result<()> {
    let (oc, _) = cx.out_c_pix();
    let out = cx.out;
    let xs = cx.in_shape(0)?;
    let (h, w, oh, ow) = (xs.h(), xs.w(), cx.node.shape.h(), cx.node.shape.w());
    let [kh, kw] = pl.kernel;
    let [sh, sw] = pl.stride;
    let hp = ((oh - 1) * sh + kh).max(h + pl.pad.top);
    let wp = ((ow - 1) * sw + kw).max(w + pl.pad.left);
    let max = pl.kind == PoolKind::Max;
    let cb = cpad(oc) / BLOCK;
    let src = cx.input(0)?;
    let (input, scratch) = if hp != h || wp != w || pl.pad.top > 0 || pl.pad.left > 0 {
        let (sb, so) = p.scratch(cb * hp * wp * BB, 1);
        let fill = if max { f32::NEG_INFINITY } else { 0.0 };
        p.kernel(
            KernelSpec::Pad { cb, h, w, top: pl.pad.top, left: pl.pad.left, hp, wp, fill: fill.to_bits() },
            vec![Arg::Arena(so), Arg::Arena(src)],
            (cb * hp * wp * BLOCK) as u64,
        );
        (so, Some(sb))
    } else {
        (src, None)
    };
    let mut args = vec![Arg::Arena(out), Arg::Arena(input)];
    if !max {
        let mut div = vec![0.0f32; oh * ow];
        for i in 0..oh {
            for j in 0..ow {
                let y0 = (i * sh) as isize - pl.pad.top as isize;
                let x0 = (j * sw) as isize - pl.pad.left as isize;
                let (y1, x1) = (y0 + kh as isize, x0 + kw as isize);
                let rows = y1.min(h as isize) - y0.max(0);
                let cols = x1.min(w as isize) - x0.max(0);
                let count = rows.max(0) * cols.max(0);
                let d = if pl.count_include_pad {
                    (y1.min((h + pl.pad.bottom) as isize) - y0) * (x1.min((w + pl.pad.right) as isize) - x0)
                } else {
                    count
                };
                div[i * ow + j] = if d <= 0 || count == 0 { 1.0 } else { d as f32 };
            }
        }
        args.push(p.param(&div));
    }
    p.kernel(
        KernelSpec::Pool { cb, hp, wp, kernel: pl.kernel, stride: pl.stride, oh, ow, max },
        args,
        (cb * BLOCK * oh * ow * kh * kw) as u64,
    );
    if let Some(sb) = scratch {
        p.arena.unref(sb);
    }
    Ok(())
}

/// Global average pooling.
fn global_avg_pool<'w>(p: &mut Planner<'w>, cx: &NodeCx) -> Result<()> {
    let (oc, _) = cx.out_c_pix();
    let out = cx.out;
    let xs = cx.in_shape(0)?;
    let src = cx.input(0)?;
    let cb = cpad(oc) / BLOCK;
    p.kernel(
        KernelSpec::GlobalAvg { cb, pix: xs.h() * xs.w() },
        vec![Arg::Arena(out), Arg::Arena(src)],
        (cb * BLOCK * xs.h() * xs.w()) as u64,
    );
    Ok(())
}

/// Local response normalisation across channels.
fn lrn<'w>(p: &mut Planner<'w>, cx: &NodeCx, l: &Lrn) -> Result<()> {
    let (oc, opix) = cx.out_c_pix();
    let out = cx.out;
    let src = cx.input(0)?;
    p.zero_tail(out, oc, opix);
    p.kernel(
        KernelSpec::Lrn {
            c: oc,
            pix: opix,
            size: l.size,
            alpha: l.alpha.to_bits(),
            beta: l.beta.to_bits(),
            k: l.k.to_bits(),
        },
        vec![Arg::Arena(out), Arg::Arena(src), Arg::Helper(Helper::Powf)],
        (oc * opix * (2 * l.size + 8)) as u64,
    );
    Ok(())
}

/// L2 normalisation or softmax along the channels of each pixel.
fn along_channels<'w>(p: &mut Planner<'w>, cx: &NodeCx) -> Result<()> {
    let (oc, opix) = cx.out_c_pix();
    let out = cx.out;
    let src = cx.input(0)?;
    let op = match cx.node.op {
        Op::L2Norm { eps } => ChannelOp::L2Norm(eps.to_bits()),
        _ => ChannelOp::Softmax,
    };
    p.zero_tail(out, oc, opix);
    p.kernel(
        KernelSpec::AlongChannels { op, c: oc, pix: opix },
        vec![Arg::Arena(out), Arg::Arena(src), Arg::Helper(Helper::Expf)],
        (oc * opix * 8) as u64,
    );
    Ok(())
}

/// A flatten that moves data (a map of more than one pixel).
fn flatten<'w>(p: &mut Planner<'w>, cx: &NodeCx) -> Result<()> {
    let (oc, _) = cx.out_c_pix();
    let out = cx.out;
    let xs = cx.in_shape(0)?;
    let src = cx.input(0)?;
    let (c, pix) = c_pix(xs);
    p.zero_tail(out, oc, 1);
    p.kernel(KernelSpec::Flatten { c, pix }, vec![Arg::Arena(out), Arg::Arena(src)], (c * pix) as u64);
    Ok(())
}

/// A channel slice that is not a view: a copy.
fn slice<'w>(p: &mut Planner<'w>, cx: &NodeCx, (start, len): (usize, usize)) -> Result<()> {
    let (oc, opix) = cx.out_c_pix();
    let out = cx.out;
    let src = cx.input(0)?;
    p.zero_tail(out, oc, opix);
    if start % BLOCK == 0 && len % BLOCK == 0 {
        let n = len / 4 * opix;
        p.kernel(KernelSpec::Copy { n }, vec![Arg::Arena(out), Arg::Arena(src + start / BLOCK * opix * BB)], n as u64);
    } else {
        p.kernel(
            KernelSpec::CopyChannels { c: len, pix: opix, off: 0, src_off: start },
            vec![Arg::Arena(out), Arg::Arena(src)],
            (len * opix) as u64,
        );
    }
    Ok(())
}

/// A concat: copies of the operands not written in place.
fn concat<'w>(p: &mut Planner<'w>, cx: &NodeCx) -> Result<()> {
    let (oc, opix) = cx.out_c_pix();
    let out = cx.out;
    let written = cx.ops.iter().filter(|o| cx.placed.get(o).is_some_and(|t| t.0 == cx.id)).count();
    // A placed last operand writes the tail block (padding included) itself,
    // before this step: zeroing it here would erase its channels.
    let last_placed = cx.ops.last().is_some_and(|o| cx.placed.get(o).is_some_and(|t| t.0 == cx.id));
    if written < cx.ops.len() && !last_placed {
        p.zero_tail(out, oc, opix);
    }
    let mut off = 0;
    for (i, o) in cx.ops.iter().enumerate() {
        let (ci, _) = c_pix(cx.in_shape(i)?);
        if cx.placed.get(o).is_some_and(|t| t.0 == cx.id) {
            off += ci;
            continue;
        }
        let src = cx.input(i)?;
        if off % BLOCK == 0 {
            let n = cpad(ci) / 4 * opix;
            p.kernel(
                KernelSpec::Copy { n },
                vec![Arg::Arena(out + off / BLOCK * opix * BB), Arg::Arena(src)],
                n as u64,
            );
        } else {
            p.kernel(
                KernelSpec::CopyChannels { c: ci, pix: opix, off, src_off: 0 },
                vec![Arg::Arena(out), Arg::Arena(src)],
                (ci * opix) as u64,
            );
        }
        off += ci;
    }
    Ok(())
}
