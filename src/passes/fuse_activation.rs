//! Fuse residual sums and ReLUs into the epilogue of the convolution that produces them.
//!
//! ```text
//! %7 = conv2d[320, 1x1, bias] %6               %7 = conv2d[320, 1x1, bias, residual 0.17, relu] %6, %1
//! %8 = add[scale 0.17] %1, %7           =>
//! %9 = relu %8                                 (users of %9 now read %7)
//! ```
//!
//! - `add[scale] x, conv` where the conv's sole user is the add becomes the conv's residual
//!   epilogue `x + scale * conv` (x is operand 1 of the conv). With `scale = 1` the sum is
//!   commutative, so `add conv, x` is fused too.
//! - `relu y` where `y` is a `Conv2d` or `Linear` whose sole user is the relu becomes the
//!   layer's `relu` flag (after the residual sum, as the epilogue defines).
//!
//! The bias is part of every convolution already, and batch norms are folded before this
//! pass runs. Both rewrites are exact: the epilogue computes the same f32 operations in
//! the same order. One rewrite per add or relu removed.

use super::{Pass, sole_user};
use crate::error::Result;
use crate::ir::{Graph, NodeId, Op};
use crate::weights::Weights;

/// The `fuse-activation` pass.
pub struct FuseActivation;

impl Pass for FuseActivation {
    fn name(&self) -> &'static str {
        "fuse-activation"
    }

    fn run(&self, g: &mut Graph, _w: &mut Weights) -> Result<usize> {
        let mut rewrites = 0;
        // Topological order: an add is fused before the relu that follows it.
        for id in g.topo_order() {
            match g.node(id).op {
                Op::Add { scale } => {
                    let &[a, b] = g.operands(id).as_slice() else {
                        continue;
                    };
                    let (x, conv) = if fusable_conv(g, b, id) {
                        (a, b)
                    } else if scale == 1.0 && fusable_conv(g, a, id) {
                        (b, a)
                    } else {
                        continue;
                    };
                    if x == conv {
                        continue;
                    }
                    if let Op::Conv2d(c) = &mut g.node_mut(conv).op {
                        c.epilogue.residual = Some(scale);
                    }
                    g.g.add_edge(x.0, conv.0, 1);
                    g.replace_uses(id, conv);
                    g.remove(id);
                    rewrites += 1;
                }
                Op::Relu => {
                    let &[y] = g.operands(id).as_slice() else {
                        continue;
                    };
                    if sole_user(g, y) != Some(id) {
                        continue;
                    }
                    match &mut g.node_mut(y).op {
                        Op::Conv2d(c) if !c.epilogue.relu => c.epilogue.relu = true,
                        Op::Linear(l) if !l.relu => l.relu = true,
                        _ => continue,
                    }
                    g.replace_uses(id, y);
                    g.remove(id);
                    rewrites += 1;
                }
                _ => {}
            }
        }
        Ok(rewrites)
    }
}

/// True when `conv` is a convolution with an empty epilogue read only by `add`.
fn fusable_conv(g: &Graph, conv: NodeId, add: NodeId) -> bool {
    matches!(&g.node(conv).op, Op::Conv2d(c) if c.epilogue.is_empty()) && sole_user(g, conv) == Some(add)
}
