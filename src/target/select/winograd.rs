//! Choose the convolutions computed by Winograd transforms (see [`crate::target::winograd`]).
//!
//! ```text
//! %5 = conv2d[192, 3x3, bias, relu] %4 : 1x192x71x71  =>  %5 = conv2d[192, 3x3, bias, relu, winograd 4x4] ..
//! ```
//!
//! A convolution qualifies when it has stride 1, one group, 1, 3, 5 or 7 taps along each
//! axis (not 1x1), an input not stored compact (`nhwc`), a map of at least [`MIN_PIXELS`]
//! output pixels (the transformed weights are `P / (kh * kw)` times larger than the
//! kernel's, 4x for 3x3, and on small maps the few tiles cannot amortise streaming them),
//! and enough channels for the multiplications saved to pay for the transforms
//! ([`MIN_SAVED_PER_ELEMENT`]). The
//! output tile per axis is [`Transform1d::tile_for`] its taps: 2 (`F(2x2, 3x3)` does
//! 2.25x fewer multiplications, `F(2, 7)` 1.75x).
//!
//! The wide tiers honour the annotation; the portable tier computes such a convolution
//! directly. One rewrite per convolution annotated.

use crate::error::Result;
use crate::ir::{Graph, Layout, NodeId, Op, Precision};
use crate::passes::Pass;
use crate::target::winograd::Transform1d;
use crate::weights::Weights;

/// Output pixels below which a convolution stays direct.
pub const MIN_PIXELS: usize = 17 * 17;

/// Multiply-adds saved per element transformed below which a convolution stays direct.
///
/// Per output pixel, `F(m, r)` saves `cin * cout * (kh*kw - P/(mh*mw))` multiply-adds and
/// transforms `(cin + cout) * P/(mh*mw)` elements (in and out). Measured on 2 threads
/// (`incc bench`): alone, 1x7 32->32 and 7x1 48->64 on 17x17 (12 and 21 saved per element)
/// ran 0.83x and 0.79x as fast as direct, while most layers above 24 ran 1.1x to 3x faster;
/// in Inception-v3, `F(2x2, 3x3)` on the 32->32 stem convolution (20) ran 0.75x.
pub const MIN_SAVED_PER_ELEMENT: f64 = 24.0;

/// The `select-winograd` pass, for a network computed in `precision` (none in bf16).
pub struct SelectWinograd {
    /// The arithmetic the network is compiled for.
    pub precision: Precision,
}

impl Pass for SelectWinograd {
    fn name(&self) -> &'static str {
        "select-winograd"
    }

    fn run(&self, g: &mut Graph, _w: &mut Weights) -> Result<usize> {
        let mut rewrites = 0;
        if self.precision != Precision::F32 {
            return Ok(0); // bf16 convolutions run direct (crate::ir::precision)
        }
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
    let m = c.kernel.map(Transform1d::tile_for);
    (ok && saved_per_element(c.in_channels, c.out_channels, c.kernel, m) >= MIN_SAVED_PER_ELEMENT).then_some(m)
}

/// Multiply-adds saved per element transformed (see [`MIN_SAVED_PER_ELEMENT`]).
fn saved_per_element(cin: usize, cout: usize, k: [usize; 2], m: [usize; 2]) -> f64 {
    let per_px = ((m[0] + k[0] - 1) * (m[1] + k[1] - 1)) as f64 / (m[0] * m[1]) as f64;
    (cin * cout) as f64 * ((k[0] * k[1]) as f64 - per_px) / ((cin + cout) as f64 * per_px)
}

/// Whether an annotation `m` fits convolution `id` (the verifier's check).
pub fn fits(g: &Graph, id: NodeId, m: [usize; 2]) -> bool {
    let Op::Conv2d(c) = &g.node(id).op else { return false };
    let x = g.operands(id).first().map(|&x| g.node(x).layout);
    c.stride == [1, 1]
        && x != Some(Layout::Nhwc)
        && (0..2).all(|a| {
            m[a] >= 1 && m[a] + c.kernel[a] - 1 <= crate::target::winograd::MAX_N && (c.kernel[a] > 1 || m[a] == 1)
        })
}
