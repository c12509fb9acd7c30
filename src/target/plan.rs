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

use super::mem::Lines;
use super::pack::Pack;
use crate::error::{Error, Result};
use crate::ir::op::padded_extent;
use crate::ir::{Graph, Layout, Node, NodeId, Op, PoolKind, Shape};
use crate::target::Tier;
pub use crate::target::codegen::emit::BLOCK;
use crate::target::codegen::kernel::{ChannelOp, KernelSpec};
use crate::target::isa::Isa;
use crate::target::portable::conv::{ConvProvider, ConvSpec, DEFAULT_CONV};
use crate::target::select::compact_reader;
use crate::target::tile::Tile;
use crate::target::tiled_conv::{TiledConvSpec, choose_tile, max_m};
use crate::target::winograd::{MAX_N, WinogradSpec};
use crate::weights::Weights;
use std::collections::HashMap;

/// Where a kernel argument points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// Byte offset into the activation arena.
    Arena(usize),
    /// Byte offset into the packed parameters.
    Param(usize),
    /// A runtime helper function (`powf` or `expf`).
    Helper(Helper),
    /// The entry of wide tile [`Plan::tiles`]`[i]`.
    Tile(usize),
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
        kernel: usize,
        /// The argument table.
        args: Vec<Arg>,
        /// Number of work items.
        items: usize,
        /// Estimated floating-point operations (decides whether to use threads).
        flops: u64,
    },
    /// Zero `len` bytes of the arena at `offset`.
    Zero {
        /// Byte offset.
        offset: usize,
        /// Bytes.
        len: usize,
    },
}

/// How a tensor is stored in the arena.
#[derive(Clone, Debug)]
pub struct Slot {
    /// Byte offset.
    pub offset: usize,
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
    /// Micro-tiles the wide convolutions call (empty on the portable tier), of the ISA of
    /// the tier planned for.
    pub tiles: Vec<Tile>,
    /// Arena offsets of the [`GUARD`]-byte guard zones (bounds-checking plans only).
    pub guards: Vec<usize>,
}

/// 64 bytes, 64-byte aligned: the unit of the arena and of the packed parameters.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub struct Line(pub [f32; 16]);

impl Line {
    /// Sixteen zeros.
    pub const ZERO: Line = Line([0.0; 16]);
}

/// `mem` as floats.
pub fn as_f32(mem: &[Line]) -> &[f32] {
    // SAFETY: `Line` is 16 plain f32s with no padding.
    unsafe { std::slice::from_raw_parts(mem.as_ptr() as *const f32, mem.len() * 16) }
}

/// `mem` as mutable floats.
pub fn as_f32_mut(mem: &mut [Line]) -> &mut [f32] {
    // SAFETY: `Line` is 16 plain f32s with no padding.
    unsafe { std::slice::from_raw_parts_mut(mem.as_mut_ptr() as *mut f32, mem.len() * 16) }
}

/// The packed parameters: 64-byte aligned floats, every block starting on a [`Line`]
/// (dereferences to all the floats, the padding between blocks included). Blocks are
/// written where they will stay, so the runtime adopts the storage without a copy; the
/// storage starts zero without being written ([`Lines`]), so padding costs nothing.
///
/// Blocks smaller than [`STAGED_FLOATS`] (biases, batch-norm factors) are written to a
/// staging buffer first and copied into place with the large ones ([`Params::take_staged`],
/// [`super::pack::Queue`]): written in place while planning, each would make the planner
/// wait for the page it falls on to be mapped, one after another.
#[derive(Debug, Default)]
pub struct Params {
    mem: Lines,
    /// Lines in use.
    used: usize,
    /// Blocks not yet in place: offset in floats, values.
    staged: Vec<(usize, Vec<f32>)>,
}

/// Blocks below this many floats are staged (see [`Params`]).
pub const STAGED_FLOATS: usize = 1 << 16;

impl Params {
    fn with_capacity(floats: usize) -> Params {
        Params { mem: Lines::zeroed(floats.div_ceil(16)), used: 0, staged: Vec::new() }
    }

    /// Appends `n` zeros and returns their offset in floats (for a block written later).
    fn reserve(&mut self, n: usize) -> usize {
        let (at, lines) = (self.used, n.div_ceil(16));
        if at + lines > self.mem.len() {
            let mut grown = Lines::zeroed((at + lines).max(2 * self.mem.len()));
            grown[..at].copy_from_slice(&self.mem[..at]);
            self.mem = grown;
        }
        self.used += lines;
        at * 16
    }

    /// Appends `n` zeros, lets `fill` write them (in place, or staged if small), and returns
    /// their offset in floats.
    fn push_with(&mut self, n: usize, fill: impl FnOnce(&mut [f32])) -> usize {
        let at = self.reserve(n);
        if n < STAGED_FLOATS {
            let mut block = vec![0.0; n];
            fill(&mut block);
            self.staged.push((at, block));
        } else {
            fill(&mut self[at..at + n]);
        }
        at
    }

    /// The staged blocks, to be copied to their offsets (in floats) before the parameters
    /// are read.
    pub fn take_staged(&mut self) -> Vec<(usize, Vec<f32>)> {
        std::mem::take(&mut self.staged)
    }

    /// The storage, as lines (those in use, then zero lines up to its capacity). Staged
    /// blocks must have been copied into place.
    pub fn into_lines(self) -> Lines {
        debug_assert!(self.staged.is_empty(), "{} staged parameter blocks were not copied", self.staged.len());
        self.mem
    }
}

impl std::ops::Deref for Params {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        as_f32(&self.mem[..self.used])
    }
}

impl std::ops::DerefMut for Params {
    fn deref_mut(&mut self) -> &mut [f32] {
        as_f32_mut(&mut self.mem[..self.used])
    }
}

impl<'a> IntoIterator for &'a Params {
    type Item = &'a f32;
    type IntoIter = std::slice::Iter<'a, f32>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Channels rounded up to the layout's block of [`BLOCK`].
pub fn cpad(c: usize) -> usize {
    c.div_ceil(BLOCK) * BLOCK
}

/// Bytes of one pixel of one channel block.
const BB: usize = BLOCK * 4;

fn bytes_of(s: &Shape) -> usize {
    let (c, pix) = c_pix(s);
    cpad(c) * pix * 4
}

fn c_pix(s: &Shape) -> (usize, usize) {
    if s.is_map() { (s.c(), s.h() * s.w()) } else { (s.0[1], 1) }
}

struct Buf {
    offset: usize,
    size: usize,
    refs: usize,
}

/// Where a tensor lives: `off` bytes into buffer `buf` (a concat operand written in place
/// or a channel slice is a view into a larger buffer).
#[derive(Clone, Copy, Debug)]
struct View {
    buf: usize,
    off: usize,
}

struct Planner<'w> {
    tier: Tier,
    guard: bool,
    guards: Vec<usize>,
    tiles: Vec<Tile>,
    kernels: Vec<KernelSpec>,
    kernel_ids: HashMap<KernelSpec, usize>,
    steps: Vec<Step>,
    params: Params,
    /// Weight blocks reserved in `params`, packed after planning.
    packs: Vec<Pack<'w>>,
    free: Vec<(usize, usize)>,
    top: usize,
    bufs: Vec<Buf>,
}

impl<'w> Planner<'w> {
    fn alloc(&mut self, size: usize) -> usize {
        let size = size.max(64).div_ceil(64) * 64;
        if self.guard {
            // A guard line on each side, and no reuse: every buffer keeps its own place.
            self.guards.push(self.top);
            let off = self.top + GUARD;
            self.top = off + size;
            self.guards.push(self.top);
            self.top += GUARD;
            return off;
        }
        let best = self.free.iter().enumerate().filter(|(_, f)| f.1 >= size).min_by_key(|(_, f)| f.1).map(|(i, _)| i);
        if let Some(i) = best {
            return self.free.swap_remove(i).0;
        }
        let off = self.top;
        self.top += size;
        off
    }

    fn release(&mut self, offset: usize, size: usize) {
        if self.guard {
            return;
        }
        self.free.push((offset, size.max(64).div_ceil(64) * 64));
    }

    fn new_buf(&mut self, size: usize, refs: usize) -> usize {
        let offset = self.alloc(size);
        self.bufs.push(Buf { offset, size, refs });
        self.bufs.len() - 1
    }

    /// Arena byte offset of a view.
    fn at(&self, v: View) -> usize {
        self.bufs[v.buf].offset + v.off
    }

    fn unref(&mut self, buf: usize) {
        let b = &mut self.bufs[buf];
        b.refs = b.refs.saturating_sub(1);
        if b.refs == 0 {
            let (o, s) = (b.offset, b.size);
            self.release(o, s);
        }
    }

    fn param(&mut self, data: &[f32]) -> Arg {
        self.param_with(data.len(), |d| d.copy_from_slice(data))
    }

    /// A parameter block of `n` floats, zeroed, then written by `fill` in place.
    fn param_with(&mut self, n: usize, fill: impl FnOnce(&mut [f32])) -> Arg {
        Arg::Param(self.params.push_with(n, fill) * 4)
    }

    /// Reserves the packed weights of `spec` (convolution `c`, tensor `key` of `weights`,
    /// transformed first for `winograd`) and queues them to be packed after planning.
    fn pack_later(
        &mut self,
        spec: &TiledConvSpec,
        c: &ConvIn,
        weights: &'w Weights,
        key: &str,
        winograd: Option<WinogradSpec>,
    ) -> Arg {
        let at = self.params.reserve(spec.packed_floats());
        let (oc, ic, key) = (c.oc, c.c, key.to_string());
        self.packs.push(Pack { at, spec: spec.clone(), oc, ic, weights, key, winograd });
        Arg::Param(at * 4)
    }

    /// A wide tile argument.
    fn tile(&mut self, t: Tile) -> Arg {
        self.tiles.push(t);
        Arg::Tile(self.tiles.len() - 1)
    }

    fn kernel(&mut self, spec: KernelSpec, args: Vec<Arg>, flops: u64) {
        let items = spec.items();
        let kernel = match self.kernel_ids.get(&spec) {
            Some(&k) => k,
            None => {
                self.kernels.push(spec.clone());
                self.kernel_ids.insert(spec, self.kernels.len() - 1);
                self.kernels.len() - 1
            }
        };
        if items > 0 {
            self.steps.push(Step::Kernel { kernel, args, items, flops });
        }
    }
}

/// Fetches `<key>.<suffix>`.
fn param<'a>(w: &'a Weights, key: &str, suffix: &str) -> Result<&'a [f32]> {
    let full = format!("{key}.{suffix}");
    w.get(&full).map(|t| t.data.as_slice()).ok_or_else(|| Error::Invalid(format!("no weight tensor `{full}`")))
}

/// Bytes of each guard zone of a bounds-checking plan.
pub const GUARD: usize = 64;

/// Lowers `graph` with `weights` to a [`Plan`] whose convolutions run on `tier`.
pub fn plan(graph: &Graph, weights: &Weights, tier: Tier) -> Result<Plan> {
    plan_checked(graph, weights, tier, false)
}

/// [`plan`], and with `guard` every buffer gets its own arena range between two
/// [`GUARD`]-byte guard zones (listed in [`Plan::guards`]) for bounds checking.
pub fn plan_checked(graph: &Graph, weights: &Weights, tier: Tier, guard: bool) -> Result<Plan> {
    let (mut plan, packs) = plan_deferred(graph, weights, tier, guard)?;
    super::pack::Queue::new(&mut plan.params, &packs)?.run(super::pack::threads())?;
    Ok(plan)
}

/// [`plan_checked`] with the large weight blocks reserved but not yet written: the plan
/// is complete once the returned [`Pack`]s are packed into [`Plan::params`] (see
/// [`super::pack::Queue`]), which can run on several threads, alongside code generation.
pub fn plan_deferred<'w>(
    graph: &Graph,
    weights: &'w Weights,
    tier: Tier,
    guard: bool,
) -> Result<(Plan, Vec<Pack<'w>>)> {
    weights.check(graph)?;
    let mut p = Planner {
        tier,
        guard,
        guards: Vec::new(),
        tiles: Vec::new(),
        kernels: Vec::new(),
        kernel_ids: HashMap::new(),
        steps: Vec::new(),
        // Packed weights take about as many floats as the dense ones (channels rounded up
        // to 16, grouped convolutions made dense): reserving generously avoids copying
        // 100+ MB on every doubling, and pages never written are never touched.
        params: Params::with_capacity(
            weights.shapes().map(|(_, s)| s.iter().product::<usize>()).sum::<usize>() * 3 / 2 + (1 << 16),
        ),
        packs: Vec::new(),
        free: Vec::new(),
        top: 0,
        bufs: Vec::new(),
    };
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
    let placed = placements(graph);
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
        let in_buf = |i: usize| -> Result<View> {
            ops.get(i)
                .and_then(|o| buf_of.get(o).copied())
                .ok_or_else(|| Error::Invalid(format!("operand {i} of {id} `{}` was not planned", node.name)))
        };
        let in_shape = |i: usize| -> Result<&Shape> {
            ops.get(i)
                .map(|&o| &graph.node(o).shape)
                .ok_or_else(|| Error::Invalid(format!("{id} `{}` lacks operand {i}", node.name)))
        };
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
            p.bufs[v.buf].refs += nuses;
            buf_of.insert(id, View { buf: v.buf, off: v.off + slice_view.unwrap_or(0) });
        } else if let Op::Input = node.op {
            let (c, pix) = c_pix(out_shape);
            let k = compact.get(&id).copied();
            let b = p.new_buf(k.map_or(bytes_of(out_shape), |k| k.bytes(c)), nuses);
            let slot = Slot { offset: p.bufs[b].offset, c, pix, compact: k };
            inputs.push((id, node.name.clone(), out_shape.clone(), slot));
            buf_of.insert(id, View { buf: b, off: 0 });
        } else {
            let (ov, own) = match storage_of(&mut p, graph, &placed, &mut storage, &uses, id) {
                Some(v) => (v, false),
                None => (View { buf: p.new_buf(bytes_of(out_shape), nuses), off: 0 }, true),
            };
            let out = p.at(ov);
            let (oc, opix) = c_pix(out_shape);
            let in0 = |p: &Planner| -> Result<usize> { Ok(p.at(in_buf(0)?)) };
            match &node.op {
                Op::Input | Op::Dropout { .. } => {}
                Op::Conv2d(c) => {
                    let xs = in_shape(0)?;
                    let weight = if c.groups > 1 {
                        ConvWeight::Values(dense_conv_weight(c, param(weights, &c.key, "weight")?))
                    } else {
                        ConvWeight::tensor(weights, &c.key)?
                    };
                    let bias = if c.bias { Some(param(weights, &c.key, "bias")?) } else { None };
                    let res = match c.epilogue.residual {
                        Some(_) => Some(Arg::Arena(p.at(in_buf(1)?))),
                        None => None,
                    };
                    let src = in0(&p)?;
                    let src_compact = ops.first().is_some_and(|o| compact.contains_key(o));
                    conv(
                        &mut p,
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
                            oh: out_shape.h(),
                            ow: out_shape.w(),
                            weight,
                            bias,
                            residual: c.epilogue.residual.zip(res),
                            relu: c.epilogue.relu,
                            out,
                            winograd: c.winograd,
                        },
                    )?;
                }
                Op::Linear(l) => {
                    let bias = if l.bias { Some(param(weights, &l.key, "bias")?) } else { None };
                    let src = in0(&p)?;
                    conv(
                        &mut p,
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
                }
                Op::BatchNorm(bn) => {
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
                    let src = in0(&p)?;
                    p.kernel(
                        KernelSpec::Affine { cb: cpad(oc) / BLOCK, pix: opix },
                        vec![Arg::Arena(out), Arg::Arena(src), sa, ta],
                        (2 * cpad(oc) * opix) as u64,
                    );
                }
                Op::Relu => {
                    let src = in0(&p)?;
                    let n = cpad(oc) * opix / 4;
                    p.kernel(KernelSpec::Relu { n }, vec![Arg::Arena(out), Arg::Arena(src)], 4 * n as u64);
                }
                Op::Add { scale } => {
                    let a = in0(&p)?;
                    let b = p.at(in_buf(1)?);
                    let n = cpad(oc) * opix / 4;
                    p.kernel(
                        KernelSpec::Add { n, scale: scale.to_bits() },
                        vec![Arg::Arena(out), Arg::Arena(a), Arg::Arena(b)],
                        8 * n as u64,
                    );
                }
                Op::Pool(pl) => {
                    let xs = in_shape(0)?;
                    let (h, w, oh, ow) = (xs.h(), xs.w(), out_shape.h(), out_shape.w());
                    let [kh, kw] = pl.kernel;
                    let [sh, sw] = pl.stride;
                    let hp = ((oh - 1) * sh + kh).max(h + pl.pad.top);
                    let wp = ((ow - 1) * sw + kw).max(w + pl.pad.left);
                    let max = pl.kind == PoolKind::Max;
                    let cb = cpad(oc) / BLOCK;
                    let src = in0(&p)?;
                    let (input, scratch) = if hp != h || wp != w || pl.pad.top > 0 || pl.pad.left > 0 {
                        let sb = p.new_buf(cb * hp * wp * BB, 1);
                        let so = p.bufs[sb].offset;
                        let fill = if max { f32::NEG_INFINITY } else { 0.0 };
                        p.kernel(
                            KernelSpec::Pad {
                                cb,
                                h,
                                w,
                                top: pl.pad.top,
                                left: pl.pad.left,
                                hp,
                                wp,
                                fill: fill.to_bits(),
                            },
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
                                    (y1.min((h + pl.pad.bottom) as isize) - y0)
                                        * (x1.min((w + pl.pad.right) as isize) - x0)
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
                        p.unref(sb);
                    }
                }
                Op::GlobalAvgPool => {
                    let xs = in_shape(0)?;
                    let src = in0(&p)?;
                    let cb = cpad(oc) / BLOCK;
                    p.kernel(
                        KernelSpec::GlobalAvg { cb, pix: xs.h() * xs.w() },
                        vec![Arg::Arena(out), Arg::Arena(src)],
                        (cb * BLOCK * xs.h() * xs.w()) as u64,
                    );
                }
                Op::Lrn(l) => {
                    let src = in0(&p)?;
                    zero_tail(&mut p, out, oc, opix);
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
                }
                Op::L2Norm { .. } | Op::Softmax => {
                    let src = in0(&p)?;
                    let op = match node.op {
                        Op::L2Norm { eps } => ChannelOp::L2Norm(eps.to_bits()),
                        _ => ChannelOp::Softmax,
                    };
                    zero_tail(&mut p, out, oc, opix);
                    p.kernel(
                        KernelSpec::AlongChannels { op, c: oc, pix: opix },
                        vec![Arg::Arena(out), Arg::Arena(src), Arg::Helper(Helper::Expf)],
                        (oc * opix * 8) as u64,
                    );
                }
                Op::Flatten => {
                    let xs = in_shape(0)?;
                    let src = in0(&p)?;
                    let (c, pix) = c_pix(xs);
                    zero_tail(&mut p, out, oc, 1);
                    p.kernel(KernelSpec::Flatten { c, pix }, vec![Arg::Arena(out), Arg::Arena(src)], (c * pix) as u64);
                }
                Op::Slice { start, len } => {
                    let src = in0(&p)?;
                    zero_tail(&mut p, out, oc, opix);
                    if start % BLOCK == 0 && len % BLOCK == 0 {
                        let n = len / 4 * opix;
                        p.kernel(
                            KernelSpec::Copy { n },
                            vec![Arg::Arena(out), Arg::Arena(src + start / BLOCK * opix * BB)],
                            n as u64,
                        );
                    } else {
                        p.kernel(
                            KernelSpec::CopyChannels { c: *len, pix: opix, off: 0, src_off: *start },
                            vec![Arg::Arena(out), Arg::Arena(src)],
                            (len * opix) as u64,
                        );
                    }
                }
                Op::Concat => {
                    let written = ops.iter().filter(|o| placed.get(o).is_some_and(|t| t.0 == id)).count();
                    // A placed last operand writes the tail block (padding included) itself,
                    // before this step: zeroing it here would erase its channels.
                    let last_placed = ops.last().is_some_and(|o| placed.get(o).is_some_and(|t| t.0 == id));
                    if written < ops.len() && !last_placed {
                        zero_tail(&mut p, out, oc, opix);
                    }
                    let mut off = 0;
                    for (i, o) in ops.iter().enumerate() {
                        let (ci, _) = c_pix(in_shape(i)?);
                        if placed.get(o).is_some_and(|t| t.0 == id) {
                            off += ci;
                            continue;
                        }
                        let src = p.at(in_buf(i)?);
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
                }
            }
            buf_of.insert(id, ov);
            if nuses == 0 && own {
                p.unref(ov.buf);
            }
        }
        for o in &ops {
            if let Some(&v) = buf_of.get(o) {
                p.unref(v.buf);
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
        arena_bytes: p.top.max(64),
        inputs: ins,
        outputs,
        tiles: p.tiles,
        guards: p.guards,
    };
    Ok((plan, p.packs))
}

/// The operands written straight into their concat's buffer: operand -> (concat, byte
/// offset in the concat). Only concats marked `in_place` (by `eliminate-concat`) qualify,
/// and only operands that start on a channel block, own their output (they run a kernel)
/// and, unless last, end on one (so the padded channels of the concat stay zero).
fn placements(graph: &Graph) -> HashMap<NodeId, (NodeId, usize)> {
    let mut placed = HashMap::new();
    for id in graph.node_ids() {
        let node = graph.node(id);
        if !matches!(node.op, Op::Concat) || !node.in_place {
            continue;
        }
        let ops = graph.operands(id);
        let (_, pix) = c_pix(&node.shape);
        let mut off = 0;
        for (i, &o) in ops.iter().enumerate() {
            let (c, _) = c_pix(&graph.node(o).shape);
            let owns = !matches!(graph.node(o).op, Op::Input | Op::Dropout { .. } | Op::Flatten | Op::Slice { .. });
            let once = ops.iter().filter(|&&x| x == o).count() == 1;
            if owns && once && off % BLOCK == 0 && (c % BLOCK == 0 || i + 1 == ops.len()) {
                placed.insert(o, (id, off / BLOCK * pix * BB));
            }
            off += c;
        }
    }
    placed
}

/// Readers of `id` and of every tensor written in place inside it.
fn live_refs(placed: &HashMap<NodeId, (NodeId, usize)>, uses: &HashMap<NodeId, usize>, id: NodeId) -> usize {
    let inner: usize = placed.iter().filter(|(_, t)| t.0 == id).map(|(&o, _)| live_refs(placed, uses, o)).sum();
    uses.get(&id).copied().unwrap_or(0) + inner
}

/// The view `id` must write to when it lives inside a concat's buffer (creating that
/// buffer, with the readers of everything in it as its references, on first use);
/// `None` when `id` owns a buffer of its own.
fn storage_of(
    p: &mut Planner,
    graph: &Graph,
    placed: &HashMap<NodeId, (NodeId, usize)>,
    storage: &mut HashMap<NodeId, View>,
    uses: &HashMap<NodeId, usize>,
    id: NodeId,
) -> Option<View> {
    if let Some(&v) = storage.get(&id) {
        return Some(v);
    }
    let is_host = placed.values().any(|t| t.0 == id);
    if let Some(&(c, off)) = placed.get(&id) {
        // `c` hosts `id`, so it always has storage.
        let cv = storage_of(p, graph, placed, storage, uses, c)?;
        let v = View { buf: cv.buf, off: cv.off + off };
        if is_host {
            storage.insert(id, v);
        }
        return Some(v);
    }
    if is_host {
        let v = View { buf: p.new_buf(bytes_of(&graph.node(id).shape), live_refs(placed, uses, id)), off: 0 };
        storage.insert(id, v);
        return Some(v);
    }
    None
}

/// Zeroes the padded channels `c..cpad(c)` (and the partial block holding channel `c`) of
/// a map with `pix` pixels at `out`, for kernels that only write the real channels.
fn zero_tail(p: &mut Planner, out: usize, c: usize, pix: usize) {
    if !c.is_multiple_of(BLOCK) {
        let from = c / BLOCK * pix * BB;
        let to = cpad(c) * pix * 4;
        p.steps.push(Step::Zero { offset: out + from, len: to - from });
    }
}

/// A grouped weight `[oc][ic/g][kh][kw]` as the dense block-diagonal `[oc][ic][kh][kw]`.
fn dense_conv_weight<'a>(c: &crate::ir::Conv2d, w: &'a [f32]) -> std::borrow::Cow<'a, [f32]> {
    if c.groups <= 1 {
        return std::borrow::Cow::Borrowed(w);
    }
    let [kh, kw] = c.kernel;
    let (ipg, opg) = (c.in_channels / c.groups, c.out_channels / c.groups);
    let k = kh * kw;
    let mut d = vec![0.0f32; c.out_channels * c.in_channels * k];
    for o in 0..c.out_channels {
        let g = o / opg;
        for i in 0..ipg {
            let src = &w[(o * ipg + i) * k..(o * ipg + i + 1) * k];
            let ci = g * ipg + i;
            d[(o * c.in_channels + ci) * k..(o * c.in_channels + ci + 1) * k].copy_from_slice(src);
        }
    }
    std::borrow::Cow::Owned(d)
}

struct ConvIn<'a> {
    src: usize,
    /// `src` is a [`Compact`] input already padded for this convolution.
    src_compact: bool,
    c: usize,
    h: usize,
    w: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    /// top, bottom, left, right
    pad: [usize; 4],
    oc: usize,
    oh: usize,
    ow: usize,
    weight: ConvWeight<'a>,
    bias: Option<&'a [f32]>,
    residual: Option<(f32, Arg)>,
    relu: bool,
    out: usize,
    /// Output tile of a Winograd convolution (honoured on the wide tiers).
    winograd: Option<[usize; 2]>,
}

/// A convolution's dense `[oc][ic][kh][kw]` weights.
enum ConvWeight<'w> {
    /// At hand (a grouped convolution's, made dense).
    Values(std::borrow::Cow<'w, [f32]>),
    /// Tensor `<key>.weight` of the weights; the wide tier packs it after planning, reading
    /// 16 output channels at a time ([`Weights::columns`]), so a seeded tensor is never held
    /// in memory whole.
    Tensor(&'w Weights, String),
}

impl<'w> ConvWeight<'w> {
    /// The weight of layer `key`, which must exist.
    fn tensor(weights: &'w Weights, key: &str) -> Result<ConvWeight<'w>> {
        let full = format!("{key}.weight");
        match weights.shape(&full) {
            Some(_) => Ok(ConvWeight::Tensor(weights, full)),
            None => Err(Error::Invalid(format!("no weight tensor `{full}`"))),
        }
    }

    /// All the values (a seeded tensor is generated, and kept, now).
    fn dense(&self) -> Result<&[f32]> {
        match self {
            ConvWeight::Values(v) => Ok(v),
            ConvWeight::Tensor(w, key) => {
                w.get(key).map(|t| t.data.as_slice()).ok_or_else(|| Error::Invalid(format!("no weight tensor `{key}`")))
            }
        }
    }
}

/// Pad step (if the layer pads), packed weights and the conv step.
fn conv<'w>(p: &mut Planner<'w>, c: ConvIn<'w>) -> Result<()> {
    if let (Some(m), Some(isa)) = (c.winograd, p.tier.isa())
        && let Some(spec) = winograd_spec(&c, m, isa)?
    {
        return winograd(p, c, spec, isa);
    }
    let (cb_in, lanes) = if c.src_compact { (1, c.c) } else { (cpad(c.c) / BLOCK, BLOCK) };
    let [top, _, left, _] = c.pad;
    let [kh, kw] = c.kernel;
    let [sh, sw] = c.stride;
    // The extent a compact input was sized by, too.
    let (hp, wp) = padded_extent([c.h, c.w], [c.oh, c.ow], c.kernel, c.stride, c.pad);
    let padded = hp != c.h || wp != c.w;
    let (input, scratch) = if padded && !c.src_compact {
        let sb = p.new_buf(cb_in * hp * wp * BB, 1);
        let so = p.bufs[sb].offset;
        p.kernel(
            KernelSpec::Pad { cb: cb_in, h: c.h, w: c.w, top, left, hp, wp, fill: 0 },
            vec![Arg::Arena(so), Arg::Arena(c.src)],
            (cb_in * hp * wp * BLOCK) as u64,
        );
        (so, Some(sb))
    } else {
        (c.src, None)
    };
    // 1x1, stride 1 on an unpadded input: pixels are independent, so whole groups of rows
    // form one long row (fewer remainder tiles).
    let (mut oh, mut ow, mut ihp, mut iwp) = (c.oh, c.ow, hp, wp);
    if kh == 1 && kw == 1 && sh == 1 && sw == 1 && !padded && !c.src_compact {
        let r = (1..=c.oh).rev().find(|r| c.oh.is_multiple_of(*r) && r * c.ow <= 512).unwrap_or(1);
        oh = c.oh / r;
        ow = c.ow * r;
        ihp = oh;
        iwp = ow;
    }
    let (kernel, args, flops) = if let Some(isa) = p.tier.isa() {
        let ocb = cpad(c.oc) / BLOCK;
        let (m, nr) = choose_tile(isa, ow, ocb, cb_in * kh * kw * lanes);
        let spec = TiledConvSpec {
            cb_in,
            lanes,
            hp: ihp,
            wp: iwp,
            kernel: c.kernel,
            stride: c.stride,
            oh,
            ow,
            ocb,
            nr,
            m,
            residual: c.residual.map(|r| r.0.to_bits()),
            relu: c.relu,
            row_weights: false,
        };
        let wa = match &c.weight {
            ConvWeight::Tensor(weights, key) => p.pack_later(&spec, &c, weights, key, None),
            ConvWeight::Values(dense) => p.param_with(spec.packed_floats(), |d| spec.pack_into(c.oc, c.c, dense, d)),
        };
        let ba = p.param_with(ocb * BLOCK, |d| {
            if let Some(b) = c.bias {
                d[..c.oc].copy_from_slice(&b[..c.oc]);
            }
        });
        let mut args = vec![Arg::Arena(c.out), Arg::Arena(input), wa, ba, c.residual.map_or(Arg::Null, |r| r.1)];
        for t in spec.tiles() {
            args.push(p.tile(Tile::Conv(t)));
        }
        if args.len() < 7 {
            args.push(Arg::Null);
        }
        let flops = 2 * spec.macs();
        (KernelSpec::TiledConv(spec), args, flops)
    } else {
        let spec = ConvSpec {
            cb_in,
            lanes,
            hp: ihp,
            wp: iwp,
            kernel: c.kernel,
            stride: c.stride,
            oh,
            ow,
            ocp: cpad(c.oc) / 8,
            residual: c.residual.map(|r| r.0.to_bits()),
            relu: c.relu,
        };
        let packed = DEFAULT_CONV.pack(&spec, c.oc, c.c, c.weight.dense()?);
        let bias = DEFAULT_CONV.pack_bias(&spec, c.oc, c.bias);
        let (wa, ba) = (p.param(&packed), p.param(&bias));
        let mut args = vec![Arg::Arena(c.out), Arg::Arena(input), wa, ba];
        if let Some((_, r)) = c.residual {
            args.push(r);
        }
        let flops = 2 * spec.macs();
        (KernelSpec::Conv(spec), args, flops)
    };
    p.kernel(kernel, args, flops);
    if let Some(sb) = scratch {
        p.unref(sb);
    }
    Ok(())
}

/// The Winograd geometry of `c` with output tiles `m`, or `None` when the transform tiles
/// do not fit the registers of `isa` (AVX2's 16 for 7-point transforms): then the
/// convolution runs directly. An annotation that does not fit the convolution is an error.
fn winograd_spec(c: &ConvIn, m: [usize; 2], isa: Isa) -> Result<Option<WinogradSpec>> {
    let r = c.kernel;
    let ok = c.stride == [1, 1]
        && !c.src_compact
        && (0..2).all(|a| m[a] >= 1 && m[a] + r[a] - 1 <= MAX_N && (r[a] > 1 || m[a] == 1));
    if !ok {
        return Err(Error::Invalid(format!(
            "winograd {}x{} does not apply to a {}x{} stride {:?} convolution{}",
            m[0],
            m[1],
            r[0],
            r[1],
            c.stride,
            if c.src_compact { " of a compact input" } else { "" }
        )));
    }
    let (cb, ocb) = (cpad(c.c) / BLOCK, cpad(c.oc) / BLOCK);
    let spec = WinogradSpec {
        cb,
        ocb,
        h: c.h,
        w: c.w,
        top: c.pad[0],
        left: c.pad[2],
        oh: c.oh,
        ow: c.ow,
        m,
        r,
        residual: c.residual.map(|r| r.0.to_bits()),
        relu: c.relu,
        band: c.oh.div_ceil(m[0]),
    };
    let tiles_fit =
        spec.input_tiles().into_iter().map(Some).chain(spec.output_tiles()).flatten().all(|t| t.validate(isa).is_ok());
    Ok(tiles_fit.then_some(spec))
}

/// Bytes of `V` and `M` per band of a Winograd convolution: the two cores' L2. Measured on
/// Inception-v3, -v4 and -ResNet-v2 (2026-11-29): 4 MiB bands run as fast as whole layers
/// and halve the arena (59 -> 29, 67 -> 32, 61 -> 26 MB: the stems' 147x147 layers);
/// bands of 2 MiB and less run up to 1.25x slower, as every band reads all the weights.
const BAND_BYTES: usize = 4 << 20;

/// A Winograd convolution on the wide tier of `isa`: transform the input (zero padding
/// included), one 1x1 product per position, transform the output (see
/// [`crate::target::winograd`]).
fn winograd<'w>(p: &mut Planner<'w>, c: ConvIn<'w>, spec: WinogradSpec, isa: Isa) -> Result<()> {
    let (cb, ocb, m) = (spec.cb, spec.ocb, spec.m);
    let pos = spec.positions();
    let ([nh, nw], [th, tw]) = (spec.n(), spec.tiles());
    // Bands of tile rows, each through all three steps, with `V` and `M` of about
    // [`BAND_BYTES`] together.
    let per_row = (cb + ocb) * pos * tw * BB;
    let bands = th.div_ceil((BAND_BYTES / per_row).clamp(1, th));
    let band = th.div_ceil(bands);
    let most = band * tw;
    // The products read V from L2, not L1: the widest tile (most FMAs per broadcast) wins
    // over what `choose_tile`'s L1 model prefers (measured on Inception-v3: nr 3-4 run the
    // 35x35 products 1.5x faster than 27x1).
    let nr = (1..=4).rev().find(|n| ocb.is_multiple_of(*n)).unwrap_or(1);
    let gemm = |t: usize| TiledConvSpec {
        cb_in: cb,
        lanes: BLOCK,
        hp: pos,
        wp: t,
        kernel: [1, 1],
        stride: [1, 1],
        oh: pos,
        ow: t,
        ocb,
        nr,
        m: t.div_ceil(t.div_ceil(max_m(isa, nr).min(t))),
        residual: None,
        relu: false,
        row_weights: true,
    };
    let full = gemm(most);
    let wa = match &c.weight {
        ConvWeight::Tensor(weights, key) => p.pack_later(&full, &c, weights, key, Some(spec.clone())),
        ConvWeight::Values(dense) => {
            let u = spec.transform_weights(c.oc, c.c, dense);
            p.param_with(full.packed_floats(), |d| full.pack_rows_into(c.oc, c.c, &u, d))
        }
    };
    let zero_bias = p.param_with(ocb * BLOCK, |_| {});
    let ba = p.param_with(ocb * BLOCK, |d| {
        if let Some(b) = c.bias {
            d[..c.oc].copy_from_slice(&b[..c.oc]);
        }
    });
    let vb = p.new_buf(cb * pos * most * BB, 1);
    let mb = p.new_buf(ocb * pos * most * BB, 1);
    let (v, mo) = (p.bufs[vb].offset, p.bufs[mb].offset);
    for first in (0..th).step_by(band) {
        let part = WinogradSpec { band: band.min(th - first), ..spec.clone() };
        let t = part.t();
        let [inner, border] = part.input_tiles().map(|t| p.tile(Tile::Transform(t)));
        p.kernel(
            KernelSpec::WinogradIn(part.clone()),
            vec![Arg::Arena(v), Arg::Arena(c.src), inner, border, Arg::Value(first)],
            (cb * BLOCK * t * pos * (nh + nw)) as u64,
        );
        let g = gemm(t);
        let mut args = vec![Arg::Arena(mo), Arg::Arena(v), wa, zero_bias, Arg::Null];
        for tile in g.tiles() {
            args.push(p.tile(Tile::Conv(tile)));
        }
        if args.len() < 7 {
            args.push(Arg::Null);
        }
        let flops = 2 * g.macs();
        p.kernel(KernelSpec::TiledConv(g), args, flops);
        let [mh, mw] = m;
        let mut args = vec![Arg::Arena(c.out), Arg::Arena(mo), ba, c.residual.map_or(Arg::Null, |r| r.1)];
        for t in part.output_tiles() {
            args.push(t.map_or(Arg::Null, |t| p.tile(Tile::Transform(t))));
        }
        args.push(Arg::Value(first));
        let flops = (ocb * BLOCK * t * (mh * nh * nw + mh * mw * nw)) as u64;
        p.kernel(KernelSpec::WinogradOut(part), args, flops);
    }
    p.unref(vb);
    p.unref(mb);
    Ok(())
}
