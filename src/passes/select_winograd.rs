//! Choose the convolutions computed by Winograd transforms (see [`crate::jit::winograd`]).
//!
//! ```text
//! %5 = conv2d[192, 3x3, bias, relu] %4 : 1x192x71x71  =>  %5 = conv2d[192, 3x3, bias, relu, winograd 4x4] ..
//! ```
//!
//! A convolution qualifies when it has stride 1, one group, 1, 3, 5 or 7 taps along each
//! axis (not 1x1), an input not stored compact (`nhwc`), and a map of at least [`MIN_PIXELS`] output
//! pixels: the transformed weights are `P / (kh * kw)` times larger than the kernel's
//! (4x for 3x3), and on small maps the few tiles cannot amortise streaming them. The
//! output tile per axis is [`Transform1d::tile_for`] its taps: `F(4x4, 3x3)` does 4x
//! fewer multiplications, `F(2, 7)` 1.75x.
//!
//! The wide tiers honour the annotation; the portable tier computes such a convolution
//! directly. One rewrite per convolution annotated.

use super::Pass;
use crate::error::Result;
use crate::ir::{Graph, Layout, NodeId, Op};
use crate::jit::winograd::Transform1d;
use crate::weights::Weights;

/// Output pixels below which a convolution stays direct.
pub const MIN_PIXELS: usize = 17 * 17;

/// The `select-winograd` pass.
pub struct SelectWinograd;

impl Pass for SelectWinograd {
    fn name(&self) -> &'static str {
        "select-winograd"
    }

    fn run(&self, g: &mut Graph, _w: &mut Weights) -> Result<usize> {
        let mut rewrites = 0;
        for id in g.node_ids() {
            let Some(m) = choose(g, id) else { continue };
            if let Op::Conv2d(c) = &mut g.node_mut(id).op {
                c.winograd = Some(m);
                rewrites += 1;
            }
        }
        Ok(rewrites)
    }
}

/// The output tile of `id` if it qualifies.
fn choose(g: &Graph, id: NodeId) -> Option<[usize; 2]> {
    let n = g.node(id);
    let Op::Conv2d(c) = &n.op else { return None };
    let x = *g.operands(id).first()?;
    let taps_ok = c.kernel.iter().all(|&k| matches!(k, 1 | 3 | 5 | 7)) && c.kernel != [1, 1];
    let big = n.shape.is_map() && n.shape.h() * n.shape.w() >= MIN_PIXELS;
    let ok = c.stride == [1, 1] && c.groups == 1 && taps_ok && big && g.node(x).layout != Layout::Nhwc;
    ok.then(|| c.kernel.map(Transform1d::tile_for))
}

/// Whether an annotation `m` fits convolution `id` (the verifier's check).
pub fn fits(g: &Graph, id: NodeId, m: [usize; 2]) -> bool {
    let Op::Conv2d(c) = &g.node(id).op else { return false };
    let x = g.operands(id).first().map(|&x| g.node(x).layout);
    c.stride == [1, 1]
        && x != Some(Layout::Nhwc)
        && (0..2).all(|a| {
            m[a] >= 1 && m[a] + c.kernel[a] - 1 <= crate::jit::winograd::MAX_N && (c.kernel[a] > 1 || m[a] == 1)
        })
}
