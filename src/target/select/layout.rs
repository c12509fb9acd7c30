//! Choose each feature map's memory layout among those the runtime has kernels for, by a
//! cost model of the kernels that write and read it.
//!
//! ```text
//! %0 = input : 1x3x224x224                                 %0 = input : 1x3x224x224 nhwc
//! %1 = conv2d[64, 7x7, s2, p3, relu] %0 : 1x64x112x112 =>  %1 = conv2d[...] %0 : 1x64x112x112 nchw16c
//! %2 = max_pool[3x3, s2] %1 : 1x64x56x56                   %2 = max_pool[...] %1 : 1x64x56x56 nchw16c
//! ```
//!
//! The layouts ([`Layout`]) and who can use them:
//! - `nchw16c`, `[C/16][H][W][16]` with the channels rounded up to 16: every kernel of both
//!   tiers reads and writes it, so it is the layout of every feature map but one kind:
//! - `nhwc`, compact `[H+pads][W+pads][C]`: a network input of fewer than 16 channels whose
//!   one reader is an ungrouped convolution (the stem). The runtime writes the caller's
//!   NCHW image into it with the convolution's zero border, and the convolution reduces
//!   over `C` lanes per pixel.
//! - `nchw`: flat `[N, F]` tensors (after `flatten`, `linear`).
//!
//! Inputs arrive and outputs leave as NCHW; the runtime converts them while copying them in
//! and out, whatever the layout, so those copies cost the same in every choice.
//!
//! The model, in multiply-accumulate equivalents, for such an input `x` of `C` channels read
//! by convolution `y` (`macs(y)` useful multiply-adds, padded input extent `hp x wp`):
//! - `nchw16c`: `y` reduces over all 16 lanes of the block, so it runs
//!   `macs(y) * 16 / C`; a padding step copies `hp * wp * 16` elements;
//! - `nhwc`: `macs(y)`, plus writing `hp * wp * C` elements of the border.
//!
//! Each copied element costs [`COPY_COST`]. The cheaper layout wins. One rewrite per
//! feature map given a layout other than `nchw`.

use crate::error::Result;
use crate::ir::{Graph, Layout, NodeId, Op, Precision};
use crate::passes::Pass;
use crate::weights::Weights;

/// Cost of copying one element, in multiply-accumulates: an AVX-512 core retires 32 MACs
/// (two 16-lane FMAs) per cycle and copies about 16 cached floats.
pub const COPY_COST: f64 = 2.0;

use crate::ir::layout::BLOCK;

/// The `select-layout` pass, for a network computed in `precision` (its cost model weighs
/// the bf16 tiles' speed).
pub struct SelectLayout {
    /// The arithmetic the network is compiled for.
    pub precision: Precision,
}

impl Pass for SelectLayout {
    fn name(&self) -> &'static str {
        "select-layout"
    }

    fn run(&self, g: &mut Graph, _w: &mut Weights) -> Result<usize> {
        let mut rewrites = 0;
        for id in g.node_ids() {
            let layout = choose(g, id, self.precision);
            g.node_mut(id).layout = layout;
            rewrites += usize::from(layout != Layout::Nchw);
        }
        Ok(rewrites)
    }
}

/// The cheaper layout of `id`.
fn choose(g: &Graph, id: NodeId, precision: Precision) -> Layout {
    if !g.node(id).shape.is_map() {
        return Layout::Nchw;
    }
    match compact_reader(g, id) {
        Some(conv) if cost(g, id, conv, Layout::Nhwc, precision) < cost(g, id, conv, Layout::Nchw16c, precision) => {
            Layout::Nhwc
        }
        _ => Layout::Nchw16c,
    }
}

/// The convolution that could read `id` in [`Layout::Nhwc`]: `id` is a network input of
/// fewer than 16 channels, not itself an output, read once, by an ungrouped convolution.
pub fn compact_reader(g: &Graph, id: NodeId) -> Option<NodeId> {
    let n = g.node(id);
    let readers = g.users(id);
    let is_output = g.outputs.iter().any(|(_, o)| *o == id);
    if !matches!(n.op, Op::Input) || !n.shape.is_map() || n.shape.c() >= BLOCK || is_output || readers.len() != 1 {
        return None;
    }
    let r = readers[0];
    let once = g.operands(r) == vec![id];
    matches!(&g.node(r).op, Op::Conv2d(c) if c.groups <= 1 && once).then_some(r)
}

/// The model's cost of storing input `x` in `layout` for its convolution `y`. In bf16 a
/// blocked input runs the bf16 tiles, at twice the multiply-adds a cycle; a compact one the
/// f32 tiles (on values rounded to bf16).
fn cost(g: &Graph, x: NodeId, y: NodeId, layout: Layout, precision: Precision) -> f64 {
    let (xs, ys) = (&g.node(x).shape, &g.node(y).shape);
    let Op::Conv2d(c) = &g.node(y).op else { return f64::INFINITY };
    let (hp, wp) = c.padded_input(xs.h(), xs.w(), ys.h(), ys.w());
    let macs = g.macs(y) as f64;
    let lanes = match layout {
        Layout::Nhwc => xs.c(),
        _ => BLOCK,
    };
    let speed = if precision == Precision::Bf16 && layout == Layout::Nchw16c { 2.0 } else { 1.0 };
    macs * lanes as f64 / xs.c() as f64 / speed + (hp * wp * lanes) as f64 * COPY_COST
}
