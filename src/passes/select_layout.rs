//! Choose a memory layout per tensor by a cost model of the kernels that write and read it.
//!
//! ```text
//! %4 = conv2d[64, 1x1, bias, relu] %3 : 1x64x35x35          %4 = conv2d[...] %3 : 1x64x35x35 nchw16c
//! %7 = conv2d[96, 3x3, p1, bias, relu] %6 : 1x96x35x35  =>  %7 = conv2d[...] %6 : 1x96x35x35 nchw16c
//! %9 = concat %4, %7 : 1x160x35x35                          %9 = concat %4, %7 : 1x160x35x35 nchw16c
//! ```
//!
//! The decision is each node's [`layout`](crate::ir::Node::layout). What the runtime must do:
//! store every tensor in its layout; a convolution reads its (slot 0) input in whatever
//! layout that has and writes its own; every other op reads and writes the one layout its
//! class shares (below); and the tensors [`conversions`] lists get an NCHW copy for their
//! `lrn` / `flatten` consumers or as network outputs.
//!
//! The model. Tensors that an op requires to share a layout form a class: an element-wise
//! op, pool, slice or batch norm with its operand, an add or a concat with all operands, a
//! residual convolution with its residual input. Inputs, `lrn` outputs and flat `[N, F]`
//! tensors are NCHW. A class may use `Nchw{b}c` when every member has a multiple of `b`
//! channels and every slice starts at one. Its cost in a layout, in MAC-equivalents, is
//! - per convolution writing a member: `MACs / lane use`, with 16-lane f32 vectors; an NCHW
//!   kernel vectorises along W (`W / (16 * ceil(W / 16))` of the lanes do work), an
//!   `Nchw{b}c` kernel along the channel block (`b / 16`);
//! - per member read by `lrn` / `flatten` or returned as an output while blocked (unless it
//!   is 1x1, where both layouts hold the same bytes): [`CONVERT_COST`] per element.
//!
//! The cheapest layout wins; a tie keeps NCHW. So conversions appear only where the faster
//! convolutions pay for them. One rewrite per tensor given a blocked layout.

use super::Pass;
use crate::error::Result;
use crate::ir::{Graph, Layout, NodeId, Op};
use crate::weights::Weights;
use std::collections::HashMap;

/// Assumed cost of converting one element between layouts, in multiply-accumulates: a
/// strided read and a write, several times a MAC's cost on a machine whose convolutions are
/// compute bound.
pub const CONVERT_COST: f64 = 8.0;

/// Lanes of the f32 vectors the model assumes (AVX-512).
const LANES: f64 = 16.0;

/// The `select-layout` pass.
pub struct SelectLayout;

impl Pass for SelectLayout {
    fn name(&self) -> &'static str {
        "select-layout"
    }

    fn run(&self, g: &mut Graph, _w: &mut Weights) -> Result<usize> {
        let ids = g.node_ids();
        let mut parent: HashMap<NodeId, NodeId> = ids.iter().map(|&i| (i, i)).collect();
        for &id in &ids {
            let ops = g.operands(id);
            let same: Vec<NodeId> = match &g.node(id).op {
                Op::Relu
                | Op::BatchNorm(_)
                | Op::Dropout { .. }
                | Op::Pool(_)
                | Op::GlobalAvgPool
                | Op::Slice { .. } => ops,
                Op::Add { .. } | Op::Concat => ops,
                Op::Conv2d(c) if c.epilogue.residual.is_some() => ops.into_iter().skip(1).collect(),
                _ => vec![],
            };
            for o in same {
                union(&mut parent, id, o);
            }
        }
        let mut classes: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
        for &id in &ids {
            classes.entry(find(&mut parent, id)).or_default().push(id);
        }
        let mut rewrites = 0;
        let mut roots: Vec<_> = classes.keys().copied().collect();
        roots.sort();
        for root in roots {
            let members = &classes[&root];
            let layout = [Layout::Nchw, Layout::Nchw16c, Layout::Nchw4c]
                .into_iter()
                .filter(|&l| feasible(g, members, l))
                .map(|l| (l, cost(g, members, l)))
                .fold(None, |best: Option<(Layout, f64)>, (l, c)| match best {
                    Some((_, bc)) if bc <= c => best,
                    _ => Some((l, c)),
                })
                .map_or(Layout::Nchw, |(l, _)| l);
            for &m in members {
                g.node_mut(m).layout = layout;
                rewrites += usize::from(layout != Layout::Nchw);
            }
        }
        Ok(rewrites)
    }
}

/// The blocked tensors that need an NCHW copy: read by an `lrn` or `flatten`, or returned as
/// a network output, and larger than 1x1 (a 1x1 blocked tensor holds the NCHW bytes).
pub fn conversions(g: &Graph) -> Vec<NodeId> {
    g.node_ids().into_iter().filter(|&id| g.node(id).layout != Layout::Nchw && converted_reads(g, id) > 0).collect()
}

/// How many NCHW copies of `id` would be needed if it were blocked.
fn converted_reads(g: &Graph, id: NodeId) -> usize {
    let s = &g.node(id).shape;
    if !s.is_map() || s.h() * s.w() == 1 {
        return 0;
    }
    let readers = g.users(id).into_iter().filter(|&u| matches!(g.node(u).op, Op::Lrn(_) | Op::Flatten)).count();
    readers + usize::from(g.outputs.iter().any(|(_, o)| *o == id))
}

fn feasible(g: &Graph, members: &[NodeId], l: Layout) -> bool {
    let b = l.block();
    l == Layout::Nchw
        || members.iter().all(|&m| {
            let n = g.node(m);
            n.shape.is_map()
                && n.shape.c().is_multiple_of(b)
                && !matches!(n.op, Op::Input | Op::Lrn(_))
                && !matches!(n.op, Op::Slice { start, .. } if start % b != 0)
        })
}

fn cost(g: &Graph, members: &[NodeId], l: Layout) -> f64 {
    members
        .iter()
        .map(|&m| {
            let n = g.node(m);
            let lane_use = match l {
                Layout::Nchw if n.shape.is_map() => n.shape.w() as f64 / (LANES * (n.shape.w() as f64 / LANES).ceil()),
                Layout::Nchw => 1.0,
                _ => l.block() as f64 / LANES,
            };
            let compute = if matches!(n.op, Op::Conv2d(_)) { g.macs(m) as f64 / lane_use } else { 0.0 };
            let convert = if l == Layout::Nchw {
                0.0
            } else {
                converted_reads(g, m) as f64 * n.shape.numel() as f64 * CONVERT_COST
            };
            compute + convert
        })
        .sum()
}

fn find(parent: &mut HashMap<NodeId, NodeId>, mut x: NodeId) -> NodeId {
    while parent[&x] != x {
        let up = parent[&parent[&x]];
        parent.insert(x, up);
        x = up;
    }
    x
}

fn union(parent: &mut HashMap<NodeId, NodeId>, a: NodeId, b: NodeId) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        parent.insert(ra.max(rb), ra.min(rb));
    }
}
