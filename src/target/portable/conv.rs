//! Direct convolution on channel-blocked (`Nchw16c`) tensors: weight packing and the
//! register-blocked f32x4 micro-kernel.
//!
//! The input is `[cb_in][hp][wp][16]` (already zero-padded by a `Pad` kernel when the layer
//! pads), the output `[cb_out][oh][ow][16]`. A micro-tile computes `MR` consecutive output
//! pixels of one row times `NR = 2` f32x4 vectors (8 channels, half a block): `MR * NR`
//! accumulators stay in registers across the whole reduction over input-channel blocks,
//! kernel rows (both run-time loops) and kernel columns and lanes (unrolled). Each step
//! loads `NR` packed weight vectors and broadcasts `MR` input scalars (each broadcast is
//! shared by the `NR` FMAs: one broadcast per FMA was measured 2x slower, since an unfolded
//! `vbroadcastss xmm, xmm` needs the single shuffle port).
//!
//! The reduction runs in chunks of [`ConvSpec::ic_chunk`] input-channel blocks, sized so
//! that a chunk's input rows and weights stay in L1 across all tiles of an output row;
//! between chunks the partial sums wait in the output (the first chunk starts from the
//! bias, the last applies the epilogue).
//!
//! ```text
//! for chunk:                   (loop)
//!  for tile in row:            (loop)
//!   for icb in chunk, ky:      (loops)
//!    for kx, l in 0..16:       (unrolled)
//!     w_j = W[ocp][icb][ky][kx][l][j]          j < NR, one f32x4 each
//!     for i < MR: acc[i][j] = fma(splat(x[icb][oy*sh+ky][(ox+i)*sw+kx][l]), w_j, acc[i][j])
//! ```
//!
//! A grouped convolution is packed as the dense convolution with a block-diagonal weight
//! (zeros across groups): correct for every group count, `groups` times the work.

use crate::target::clif::*;
use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_frontend::{FunctionBuilder, Variable};

/// Geometry of one compiled convolution, all compile-time constants. Two layers with the
/// same `ConvSpec` share their code.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConvSpec {
    /// Input channel blocks of 16 (input channels rounded up to 16, divided by 16).
    pub cb_in: usize,
    /// Channels per input block: 16 (`Nchw16c`), or `C < 16` for a compact `[H][W][C]`
    /// input (then `cb_in = 1`); input pixels are `lanes * 4` bytes apart.
    pub lanes: usize,
    /// Height and width of the (padded) input buffer.
    pub hp: usize,
    /// Width of the (padded) input buffer.
    pub wp: usize,
    /// Kernel `[kh, kw]`.
    pub kernel: [usize; 2],
    /// Stride `[sh, sw]`.
    pub stride: [usize; 2],
    /// Output rows.
    pub oh: usize,
    /// Output columns.
    pub ow: usize,
    /// Output-channel tiles of 8 (output channels rounded up to 16, divided by 8).
    pub ocp: usize,
    /// The fused epilogue: residual scale (as f32 bits) and relu.
    pub residual: Option<u32>,
    /// Apply `max(y, 0)` last.
    pub relu: bool,
}

/// A provider of convolution micro-kernels: its tile shape, the weight order it reads and
/// the code it emits. A wider-vector tier (AVX-512) would implement the same interface
/// with its own packing.
pub trait ConvProvider {
    /// Output pixels per micro-tile (`MR`).
    fn mr(&self) -> usize;
    /// Output channels per micro-tile (`NR * lanes`).
    fn oc_tile(&self) -> usize;
    /// Packs a dense `[oc][ic][kh][kw]` weight (ic = all input channels) in read order.
    fn pack(&self, s: &ConvSpec, oc: usize, ic: usize, dense: &[f32]) -> Vec<f32>;
    /// Packs the bias (`None`: zeros) for the epilogue.
    fn pack_bias(&self, s: &ConvSpec, oc: usize, bias: Option<&[f32]>) -> Vec<f32>;
    /// Emits the body of the kernel for items `begin..end` (item = `ocp * oh + oy`).
    fn emit(&self, b: &mut FunctionBuilder, s: &ConvSpec, args: Value, begin: Value, end: Value);
}

/// The portable f32x4 + FMA provider: `MR x 2` tiles of f32x4 accumulators.
#[derive(Clone, Copy, Debug)]
pub struct F32x4Conv {
    /// Output pixels per tile; `MR * 2` accumulators (10 for `MR = 5`) fit xmm0-15 with
    /// the two weight vectors and the broadcast.
    pub mr: usize,
}

/// The default provider.
pub const DEFAULT_CONV: F32x4Conv = F32x4Conv { mr: 5 };

const NR: usize = 2;

/// Bytes of input rows and weights one reduction chunk may touch (L1d is 32-48 KB).
pub const L1_BUDGET: usize = 32 * 1024;

impl ConvSpec {
    /// Floats of packed weights per output-channel pair.
    pub fn pair_stride(&self) -> usize {
        self.cb_in * self.kernel[0] * self.kernel[1] * self.lanes * NR * 4
    }
    /// Bytes of one input pixel of one channel block.
    pub fn pixel_bytes(&self) -> i64 {
        (self.lanes * 4) as i64
    }
    /// Work items: one per (output-channel pair, output row).
    pub fn items(&self) -> usize {
        self.ocp * self.oh
    }
    /// Input-channel blocks per reduction chunk: the largest divisor of `cb_in` whose input
    /// rows and weights fit [`L1_BUDGET`] bytes (at least 1). A 1x1 kernel's tiles read
    /// disjoint pixels, each once, so only its weights count: the tiles of a row reuse
    /// them, not the input (counting the input cut a merged 289-pixel row into chunks of
    /// one block, 16 reduction steps between reloads of the accumulators).
    pub fn ic_chunk(&self) -> usize {
        let [kh, kw] = self.kernel;
        let weights = kh * kw * self.lanes * NR * VB as usize;
        let rows = if self.kernel == [1, 1] { 0 } else { kh * self.wp * self.lanes * 4 };
        let per_block = rows + weights;
        let max = (L1_BUDGET / per_block).max(1);
        (1..=self.cb_in.min(max)).rev().find(|k| self.cb_in.is_multiple_of(*k)).unwrap_or(1)
    }
    /// Multiply-adds actually executed (including padded channels).
    pub fn macs(&self) -> u64 {
        (self.ocp * 8 * self.oh * self.ow * self.cb_in * self.lanes * self.kernel[0] * self.kernel[1]) as u64
    }
}

impl ConvProvider for F32x4Conv {
    fn mr(&self) -> usize {
        self.mr
    }
    fn oc_tile(&self) -> usize {
        NR * 4
    }

    fn pack(&self, s: &ConvSpec, oc: usize, ic: usize, dense: &[f32]) -> Vec<f32> {
        let [kh, kw] = s.kernel;
        let ps = s.pair_stride();
        let mut p = vec![0.0f32; s.ocp * ps];
        // Read in source order, scatter to
        // [ocp][icb][ky][kx][l = ic % lanes][j = (oc % 8) / 4][lane = oc % 4].
        let l = s.lanes;
        let mut src = dense.iter();
        for o in 0..oc {
            let obase = (o / 8) * ps + (o % 8 / 4) * 4 + o % 4;
            for i in 0..ic {
                for ky in 0..kh {
                    for kx in 0..kw {
                        let at = obase + ((((i / l) * kh + ky) * kw + kx) * l + i % l) * NR * 4;
                        p[at] = src.next().copied().unwrap_or(0.0);
                    }
                }
            }
        }
        p
    }

    fn pack_bias(&self, s: &ConvSpec, oc: usize, bias: Option<&[f32]>) -> Vec<f32> {
        let mut p = vec![0.0f32; s.ocp * 8];
        if let Some(b) = bias {
            p[..oc].copy_from_slice(&b[..oc]);
        }
        p
    }

    fn emit(&self, b: &mut FunctionBuilder, s: &ConvSpec, args: Value, begin: Value, end: Value) {
        let out = arg(b, args, 0);
        let inp = arg(b, args, 1);
        let w = arg(b, args, 2);
        let bias = arg(b, args, 3);
        let res = if s.residual.is_some() { Some(arg(b, args, 4)) } else { None };
        let plane = (s.oh * s.ow) as i64 * BB;
        let kc = s.ic_chunk();
        let nchunks = s.cb_in / kc;
        let plane_in = (s.hp * s.wp) as i64 * s.pixel_bytes();
        let chunk_in = kc as i64 * plane_in;
        let chunk_w = (kc * s.kernel[0] * s.kernel[1] * s.lanes * NR) as i64 * VB;
        for_range(b, begin, end, |b, item| {
            let ocp = b.ins().udiv_imm_u(item, s.oh as i64);
            let oy = b.ins().urem_imm_u(item, s.oh as i64);
            let wbase = add_scaled(b, w, ocp, (s.pair_stride() * 4) as i64);
            let bb = add_scaled(b, bias, ocp, NR as i64 * VB);
            let inrow = add_scaled(b, inp, oy, (s.stride[0] * s.wp) as i64 * s.pixel_bytes());
            // Tile `ocp` is half `ocp % 2` of output block `ocp / 2`.
            let blk = b.ins().ushr_imm_u(ocp, 1);
            let half = b.ins().band_imm_u(ocp, 1);
            let o1 = b.ins().imul_imm_s(blk, plane);
            let o2 = b.ins().imul_imm_s(oy, s.ow as i64 * BB);
            let o3 = b.ins().imul_imm_s(half, NR as i64 * VB);
            let ooff = b.ins().iadd(o1, o2);
            let ooff = b.ins().iadd(ooff, o3);
            let outrow = b.ins().iadd(out, ooff);
            let resrow = res.map(|r| b.ins().iadd(r, ooff));
            let row = Row { inrow, wbase, bb, outrow, resrow };
            if nchunks == 1 {
                self.row(b, s, row, kc, true, true);
                return;
            }
            // The reduction in chunks of `kc` input-channel blocks, so that a chunk's input
            // rows and weights stay in L1 across the tiles of the row; partial sums wait in
            // the output.
            self.row(b, s, row, kc, true, false);
            if nchunks > 2 {
                let ip0 = add(b, inrow, chunk_in);
                let wp0 = add(b, wbase, chunk_w);
                counted(b, nchunks - 2, ip0, wp0, chunk_in, chunk_w, &mut |b, ip, wp| {
                    self.row(b, s, Row { inrow: ip, wbase: wp, ..row }, kc, false, false)
                });
            }
            let ip = add(b, inrow, (nchunks - 1) as i64 * chunk_in);
            let wp = add(b, wbase, (nchunks - 1) as i64 * chunk_w);
            self.row(b, s, Row { inrow: ip, wbase: wp, ..row }, kc, false, true);
        });
    }
}

impl F32x4Conv {
    /// All tiles of one output row over `kc` input-channel blocks: accumulators start from
    /// the bias (`first`) or the partial sums in the output; the epilogue runs if `last`.
    fn row(&self, b: &mut FunctionBuilder, s: &ConvSpec, row: Row, kc: usize, first: bool, last: bool) {
        let mr = self.mr;
        let full = s.ow / mr;
        let rem = s.ow % mr;
        let t = TileKind { kc, first, last };
        for_n(b, full, |b, i| {
            let ip = add_scaled(b, row.inrow, i, (mr * s.stride[1]) as i64 * s.pixel_bytes());
            let op = add_scaled(b, row.outrow, i, mr as i64 * BB);
            let rp = row.resrow.map(|r| add_scaled(b, r, i, mr as i64 * BB));
            tile(b, s, mr, t, ip, row.wbase, row.bb, op, rp);
        });
        if rem > 0 {
            let ip = add(b, row.inrow, (full * mr * s.stride[1]) as i64 * s.pixel_bytes());
            let op = add(b, row.outrow, (full * mr) as i64 * BB);
            let rp = row.resrow.map(|r| add(b, r, (full * mr) as i64 * BB));
            tile(b, s, rem, t, ip, row.wbase, row.bb, op, rp);
        }
    }
}

/// Pointers of one output row.
#[derive(Clone, Copy)]
struct Row {
    inrow: Value,
    wbase: Value,
    bb: Value,
    outrow: Value,
    resrow: Option<Value>,
}

/// Which part of the reduction a tile computes.
#[derive(Clone, Copy)]
struct TileKind {
    /// Input-channel blocks reduced.
    kc: usize,
    /// Start from the bias (else from the partial sums in the output).
    first: bool,
    /// Apply the epilogue (else store partial sums).
    last: bool,
}

/// One `m x NR` micro-tile: reduction loops, then the epilogue and the store.
#[allow(clippy::too_many_arguments)]
fn tile(
    b: &mut FunctionBuilder,
    s: &ConvSpec,
    m: usize,
    t: TileKind,
    ip: Value,
    wp: Value,
    bias: Value,
    op: Value,
    rp: Option<Value>,
) {
    let [kh, kw] = s.kernel;
    let [_, sw] = s.stride;
    let acc: Vec<Variable> = if t.first {
        let bv: Vec<Value> = (0..NR).map(|j| ldv(b, bias, j as i64 * VB)).collect();
        (0..m * NR)
            .map(|k| {
                let v = b.declare_var(V4);
                b.def_var(v, bv[k % NR]);
                v
            })
            .collect()
    } else {
        (0..m * NR)
            .map(|k| {
                let (i, j) = (k / NR, k % NR);
                let v = b.declare_var(V4);
                let x = ldv(b, op, i as i64 * BB + j as i64 * VB);
                b.def_var(v, x);
                v
            })
            .collect()
    };
    // Reduction over input-channel blocks (and kernel rows): do-while loops, counts >= 1.
    let step = |b: &mut FunctionBuilder, ipk: Value, wpk: Value| {
        for kx in 0..kw {
            for l in 0..s.lanes {
                let wv: Vec<Value> =
                    (0..NR).map(|j| ldv(b, wpk, (((kx * s.lanes + l) * NR + j) as i64) * VB)).collect();
                for i in 0..m {
                    let x = lds(b, ipk, ((i * sw + kx) as i64) * s.pixel_bytes() + (l * 4) as i64);
                    let sp = b.ins().splat(V4, x);
                    for (j, &wj) in wv.iter().enumerate() {
                        let a = b.use_var(acc[i * NR + j]);
                        let r = b.ins().fma(sp, wj, a);
                        b.def_var(acc[i * NR + j], r);
                    }
                }
            }
        }
    };
    let row_bytes = s.wp as i64 * s.pixel_bytes();
    let plane_in = (s.hp * s.wp) as i64 * s.pixel_bytes();
    let kstep = (kw * s.lanes * NR) as i64 * VB;
    if kh == 1 {
        counted(b, t.kc, ip, wp, plane_in, kstep, &mut |b, p, q| step(b, p, q));
    } else {
        counted(b, t.kc, ip, wp, plane_in, kh as i64 * kstep, &mut |b, p, q| {
            counted(b, kh, p, q, row_bytes, kstep, &mut |b, p2, q2| step(b, p2, q2))
        });
    }
    // Epilogue: residual `r + scale * y`, then relu, then the store.
    let scale = if t.last { s.residual.map(|bits| splat_const(b, f32::from_bits(bits))) } else { None };
    let zero = if s.relu && t.last { Some(splat_const(b, 0.0)) } else { None };
    for i in 0..m {
        for j in 0..NR {
            let off = i as i64 * BB + j as i64 * VB;
            let mut y = b.use_var(acc[i * NR + j]);
            if let (Some(sc), Some(r)) = (scale, rp) {
                let rv = ldv(b, r, off);
                let t = b.ins().fmul(sc, y);
                y = b.ins().fadd(rv, t);
            }
            if let Some(z) = zero {
                y = pmax(b, y, z);
            }
            stv(b, y, op, off);
        }
    }
}

/// A do-while loop run `n >= 1` times, advancing two pointers by `dp` and `dq` bytes.
fn counted(
    b: &mut FunctionBuilder,
    n: usize,
    p0: Value,
    q0: Value,
    dp: i64,
    dq: i64,
    body: &mut dyn FnMut(&mut FunctionBuilder, Value, Value),
) {
    use cranelift_codegen::ir::types::I64;
    let (pv, qv, cv) = (b.declare_var(I64), b.declare_var(I64), b.declare_var(I64));
    b.def_var(pv, p0);
    b.def_var(qv, q0);
    let n0 = ic(b, n as i64);
    b.def_var(cv, n0);
    let lp = b.create_block();
    let exit = b.create_block();
    b.ins().jump(lp, &[]);
    b.switch_to_block(lp);
    let p = b.use_var(pv);
    let q = b.use_var(qv);
    body(b, p, q);
    let p2 = b.ins().iadd_imm_s(p, dp);
    let q2 = b.ins().iadd_imm_s(q, dq);
    let c = b.use_var(cv);
    let c2 = b.ins().iadd_imm_s(c, -1);
    b.def_var(pv, p2);
    b.def_var(qv, q2);
    b.def_var(cv, c2);
    b.ins().brif(c2, lp, &[], exit, &[]);
    b.switch_to_block(exit);
}
