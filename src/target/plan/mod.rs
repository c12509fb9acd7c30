//! The execution plan: the graph lowered to a list of kernel calls over one arena, with
//! packed parameters and a liveness-based memory plan.
//!
//! ```text
//!   %3 = conv2d[64, 3x3, p1] %2        Pad   { .. }        scratch <- buf(%2)
//!                                 =>   Conv  { .. }        buf(%3) <- scratch, W@0, b@..
//! ```
//!
//! Every feature map lives in the arena as `Nchw16c` with channels rounded up to 16 (see
//! [`crate::target::codegen::kernel`]), except network inputs `select-layout` made `nhwc` ([`Compact`]);
//! the padded channels are kept zero, because every kernel either
//! writes its whole output or runs after a [`Step::Zero`] of the channels it leaves out.
//! Buffers are reused once their last reader has run (best fit, no splitting); network
//! outputs are never reused.

mod alloc;
mod conv;
mod lower;
mod place;
mod planner;

pub use crate::target::params::{Params, STAGED_FLOATS};
pub use alloc::{BufId, GUARD};

use crate::error::{Error, Result};
use crate::ir::layout::BLOCK;
use crate::ir::{Graph, Layout, Node, NodeId, Op, Precision, Shape};
use crate::target::Tier;
use crate::target::codegen::kernel::KernelSpec;
use crate::target::pack::Pack;
use crate::target::select::compact_reader;
use crate::target::tileset::Tile;
use crate::weights::Weights;
use planner::{Planner, View};
use std::collections::HashMap;
use std::fmt;

/// A kernel of [`Plan::kernels`]. Displays as `k3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KernelId(u32);

/// A tile of [`Plan::tiles`]. Displays as `t5`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TileId(u32);

macro_rules! entity {
    ($t:ident, $prefix:literal) => {
        impl $t {
            pub(crate) fn new(i: usize) -> $t {
                $t(u32::try_from(i).expect(concat!("more than 2^32 ", stringify!($t), "s")))
            }

            /// The index into its list.
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}
entity!(KernelId, "k");
entity!(TileId, "t");

/// A byte offset into the activation arena. Adding bytes (`+ usize`) moves it; displays
/// as `a@1024`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArenaOffset(pub usize);

/// A byte offset into the packed parameters ([`Plan::params`]); displays as `p@64`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ParamOffset(pub usize);

macro_rules! offset {
    ($t:ident, $prefix:literal) => {
        impl std::ops::Add<usize> for $t {
            type Output = $t;
            fn add(self, bytes: usize) -> $t {
                $t(self.0 + bytes)
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}
offset!(ArenaOffset, "a@");
offset!(ParamOffset, "p@");

/// Where a kernel argument points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// Bytes into the activation arena.
    Arena(ArenaOffset),
    /// Bytes into the packed parameters.
    Param(ParamOffset),
    /// A runtime helper function (`powf` or `expf`).
    Helper(Helper),
    /// The entry of tile [`Plan::tiles`]`[i]`.
    Tile(TileId),
    /// A null pointer (an argument the kernel does not read).
    Null,
    /// A number (a Winograd band's first tile row).
    Value(usize),
}

/// Functions the generated code calls through a pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Helper {
    /// `extern "C" fn(f32, f32) -> f32`: `x.powf(y)`.
    Powf,
    /// `extern "C" fn(f32) -> f32`: `x.exp()`.
    Expf,
}

/// One step of the plan.
#[derive(Clone, Debug)]
pub enum Step {
    /// Run kernel `kernel` (an index into [`Plan::kernels`]) on all its items.
    Kernel {
        /// Index into [`Plan::kernels`].
        kernel: KernelId,
        /// The argument table.
        args: Vec<Arg>,
        /// Number of work items.
        items: usize,
        /// Estimated floating-point operations (decides whether to use threads).
        flops: u64,
    },
    /// Zero `len` bytes of the arena at `offset`.
    Zero {
        /// Where.
        offset: ArenaOffset,
        /// Bytes.
        len: usize,
    },
}

/// How a tensor is stored in the arena.
#[derive(Clone, Debug)]
pub struct Slot {
    /// Where it starts.
    pub offset: ArenaOffset,
    /// Channels (features for vectors).
    pub c: usize,
    /// Pixels per channel (1 for vectors).
    pub pix: usize,
    /// Set when the tensor is stored compact and padded instead of `Nchw16c`.
    pub compact: Option<Compact>,
}

/// Where a [`Layout::Nhwc`] network input (fewer than [`BLOCK`] channels, one convolution
/// reads it) lives: `[hp][wp][c]`, the image at `(top, left)` inside a zero border of the
/// convolution's padding. The convolution reduces over `c` lanes instead
/// of a 16-channel block that is mostly zeros (3 of 16 for an RGB image), and needs no
/// padding step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compact {
    /// Image height.
    pub h: usize,
    /// Image width.
    pub w: usize,
    /// Padded height.
    pub hp: usize,
    /// Padded width.
    pub wp: usize,
    /// Rows of zeros above the image.
    pub top: usize,
    /// Columns of zeros left of the image.
    pub left: usize,
}

impl Compact {
    /// Bytes of the padded buffer of `c` channels.
    pub fn bytes(&self, c: usize) -> usize {
        (self.hp * self.wp * c * 4).div_ceil(BB) * BB
    }
}

/// The network inputs stored [`Compact`]: those `select-layout` gave [`Layout::Nhwc`]
/// (checked again here: the plan must not trust an annotation it cannot honour).
fn compact_inputs(graph: &Graph) -> Result<HashMap<NodeId, Compact>> {
    let mut out = HashMap::new();
    for id in graph.node_ids() {
        if graph.node(id).layout != Layout::Nhwc {
            continue;
        }
        let reader = compact_reader(graph, id).map(|r| graph.node(r));
        let Some(Node { op: Op::Conv2d(c), shape: ys, .. }) = reader else {
            return Err(Error::Invalid(format!(
                "{id} `{}`: layout nhwc without a convolution to read it",
                graph.node(id).name
            )));
        };
        let xs = &graph.node(id).shape;
        let (hp, wp) = c.padded_input(xs.h(), xs.w(), ys.h(), ys.w());
        out.insert(id, Compact { h: xs.h(), w: xs.w(), hp, wp, top: c.pad.top, left: c.pad.left });
    }
    Ok(out)
}

/// A whole network as kernel calls.
#[derive(Debug)]
pub struct Plan {
    /// Distinct kernels.
    pub kernels: Vec<KernelSpec>,
    /// Steps in execution order.
    pub steps: Vec<Step>,
    /// Packed parameters (each block 64-byte aligned).
    pub params: Params,
    /// Arena size in bytes.
    pub arena_bytes: usize,
    /// Network inputs: name, shape, slot.
    pub inputs: Vec<(String, Shape, Slot)>,
    /// Network outputs: name, shape, slot.
    pub outputs: Vec<(String, Shape, Slot)>,
    /// Micro-tiles the tiled convolutions call (empty on the portable tier), of the ISA of
    /// the tier planned for.
    pub tiles: Vec<Tile>,
    /// Arena offsets of the [`GUARD`]-byte guard zones (bounds-checking plans only).
    pub guards: Vec<ArenaOffset>,
}

/// Channels rounded up to the layout's block of [`BLOCK`].
pub fn cpad(c: usize) -> usize {
    c.div_ceil(BLOCK) * BLOCK
}

/// Bytes of one pixel of one channel block.
pub(super) const BB: usize = BLOCK * 4;

pub(super) fn bytes_of(s: &Shape) -> usize {
    let (c, pix) = c_pix(s);
    cpad(c) * pix * 4
}

pub(super) fn c_pix(s: &Shape) -> (usize, usize) {
    if s.is_map() { (s.c(), s.h() * s.w()) } else { (s.0[1], 1) }
}

/// Lowers `graph` with `weights` to a [`Plan`] whose convolutions run on `tier`.
pub fn plan(graph: &Graph, weights: &Weights, tier: Tier) -> Result<Plan> {
    plan_checked(graph, weights, tier, Precision::F32, false)
}

/// [`plan`] in the arithmetic of `precision` ([`Precision::Bf16`] needs the avx512 tier),
/// and with `guard` every buffer gets its own arena range between two [`GUARD`]-byte guard
/// zones (listed in [`Plan::guards`]) for bounds checking.
pub fn plan_checked(graph: &Graph, weights: &Weights, tier: Tier, precision: Precision, guard: bool) -> Result<Plan> {
    let (mut plan, packs) = plan_deferred(graph, weights, tier, precision, guard)?;
    crate::target::pack::Queue::new(&mut plan.params, &packs)?.run(crate::target::pack::threads())?;
    Ok(plan)
}

/// [`plan_checked`] with the large weight blocks reserved but not yet written: the plan
/// is complete once the returned [`Pack`]s are packed into [`Plan::params`] (see
/// [`crate::target::pack::Queue`]), which can run on several threads, alongside code generation.
pub fn plan_deferred<'w>(
    graph: &Graph,
    weights: &'w Weights,
    tier: Tier,
    precision: Precision,
    guard: bool,
) -> Result<(Plan, Vec<Pack<'w>>)> {
    weights.check(graph)?;
    // Packed weights take about as many floats as the dense ones (channels rounded up to
    // 16, grouped convolutions made dense): reserving generously avoids copying 100+ MB on
    // every doubling, and pages never written are never touched.
    let params = Params::with_capacity(
        weights.shapes().map(|(_, s)| s.iter().product::<usize>()).sum::<usize>() * 3 / 2 + (1 << 16),
    );
    let mut p = Planner::new(tier, precision, guard, params);
    let mut uses: HashMap<NodeId, usize> = HashMap::new();
    for id in graph.node_ids() {
        for o in graph.operands(id) {
            *uses.entry(o).or_default() += 1;
        }
    }
    for (_, id) in &graph.outputs {
        // Outputs are never freed.
        *uses.entry(*id).or_default() += 1 << 40;
    }
    let placed = place::placements(graph);
    let compact = compact_inputs(graph)?;
    // Storage of each concat whose operands are written in place, created when its first
    // operand is produced.
    let mut storage: HashMap<NodeId, View> = HashMap::new();
    let mut buf_of: HashMap<NodeId, View> = HashMap::new();
    let mut inputs = Vec::new();
    for id in graph.topo_order() {
        let node = graph.node(id);
        let ops = graph.operands(id);
        let nuses = uses.get(&id).copied().unwrap_or(0);
        let views: Vec<Option<View>> = ops.iter().map(|o| buf_of.get(o).copied()).collect();
        let in_buf = |i: usize| lower::operand(&views, i, id, node);
        let in_shape = |i: usize| lower::operand_shape(graph, &ops, i, id, node);
        let out_shape = &node.shape;
        // Aliases share their operand's buffer.
        let alias = match &node.op {
            Op::Dropout { .. } => true,
            Op::Flatten => {
                let s = in_shape(0)?;
                !s.is_map() || s.h() * s.w() == 1
            }
            _ => false,
        };
        let slice_view = match node.op {
            Op::Slice { start, len } => {
                let (sc, pix) = c_pix(in_shape(0)?);
                (start % BLOCK == 0 && (len % BLOCK == 0 || start + len == sc)).then_some(start / BLOCK * pix * BB)
            }
            _ => None,
        };
        if alias || slice_view.is_some() {
            let v = in_buf(0)?;
            p.arena.add_refs(v.buf, nuses);
            buf_of.insert(id, View { buf: v.buf, off: v.off + slice_view.unwrap_or(0) });
        } else if let Op::Input = node.op {
            let (c, pix) = c_pix(out_shape);
            let k = compact.get(&id).copied();
            let b = p.arena.new_buf(k.map_or(bytes_of(out_shape), |k| k.bytes(c)), nuses);
            let slot = Slot { offset: p.arena.offset(b), c, pix, compact: k };
            inputs.push((id, node.name.clone(), out_shape.clone(), slot));
            buf_of.insert(id, View { buf: b, off: 0 });
        } else {
            let (ov, own) = match place::storage_of(&mut p, graph, &placed, &mut storage, &uses, id) {
                Some(v) => (v, false),
                None => (View { buf: p.arena.new_buf(bytes_of(out_shape), nuses), off: 0 }, true),
            };
            let out = p.at(ov);
            let ins = views.iter().map(|v| v.map(|v| p.at(v))).collect();
            let cx = lower::NodeCx { graph, id, node, ops: &ops, ins, out, compact: &compact, placed: &placed };
            lower::node(&mut p, &cx, weights)?;
            buf_of.insert(id, ov);
            if nuses == 0 && own {
                p.arena.unref(ov.buf);
            }
        }
        for o in &ops {
            if let Some(&v) = buf_of.get(o) {
                p.arena.unref(v.buf);
            }
        }
    }
    let slot_of = |id: NodeId, s: &Shape| -> Result<Slot> {
        let v = buf_of.get(&id).ok_or_else(|| Error::Invalid(format!("output {id} was not planned")))?;
        let (c, pix) = c_pix(s);
        Ok(Slot { offset: p.at(*v), c, pix, compact: None })
    };
    let mut outputs = Vec::new();
    for (name, id) in &graph.outputs {
        let s = graph.node(*id).shape.clone();
        outputs.push((name.clone(), s.clone(), slot_of(*id, &s)?));
    }
    let mut ins = Vec::new();
    for &want in &graph.inputs {
        let found = inputs.iter().find(|i| i.0 == want).ok_or_else(|| {
            Error::Invalid(format!("network input {want} is not an `input` node reachable in the graph"))
        })?;
        ins.push((found.1.clone(), found.2.clone(), found.3.clone()));
    }
    let plan = Plan {
        kernels: p.kernels,
        steps: p.steps,
        params: p.params,
        arena_bytes: p.arena.bytes(),
        inputs: ins,
        outputs,
        tiles: p.tiles,
        guards: p.arena.guards,
    };
    Ok((plan, p.packs))
}
