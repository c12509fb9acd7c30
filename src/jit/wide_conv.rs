//! Convolution on the wide tier: Cranelift emits the loops over work items and tiles and
//! calls an AVX-512 micro-tile from [`super::wide`] for each tile.
//!
//! A work item is one output row of one group of `nr` output-channel blocks (`nr * 16`
//! channels). The row is cut into tiles of `m` pixels (plus one remainder tile); each tile
//! reduces over every input-channel block and kernel tap in registers and applies the
//! epilogue (bias, residual, ReLU) before its single store.
//!
//! ```text
//! for item in begin..end:                          (Cranelift)
//!   g, oy = item / oh, item % oh
//!   for t in 0..ow / m: tile_full(in + row(oy) + t*m*sw, W[g], out[g] + row(oy) + t*m, bias[g], res[g] + ..)
//!   if ow % m > 0:      tile_rem(..)               (the AVX-512 tiles: iced-x86)
//! ```
//!
//! Weights are packed `[g][cb_in][kh][kw][l = ic % 16][j < nr][16]`, the order a tile reads
//! them (see [`super::wide::TileSpec`]).

use super::emit::*;
use super::wide::TileSpec;
use cranelift_codegen::ir::{AbiParam, InstBuilder, Signature, Value, types};
use cranelift_codegen::isa::CallConv;
use cranelift_frontend::FunctionBuilder;

/// Geometry of one wide convolution; equal specs share code.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WideConvSpec {
    /// Input channel blocks of 16.
    pub cb_in: usize,
    /// Height of the (padded) input buffer.
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
    /// Output channel blocks of 16.
    pub ocb: usize,
    /// Output-channel blocks per tile.
    pub nr: usize,
    /// Output pixels per full tile.
    pub m: usize,
    /// Residual scale (f32 bits).
    pub residual: Option<u32>,
    /// ReLU last.
    pub relu: bool,
}

/// Estimated cycles of one reduction step (one input lane of one tap) of an `m x nr` tile:
/// two FMA ports, three load ports (every FMA loads its broadcast, plus `nr` weight
/// vectors) and at least one FMA latency (4 cycles) when too few accumulators are
/// independent.
fn step_cycles(m: usize, nr: usize) -> f64 {
    let fmas = (m * nr) as f64;
    (fmas / 2.0).max((fmas + nr as f64) / 3.0).max(4.0)
}

/// The tile shape `(m, nr)` of least estimated time for rows of `ow` pixels, `ocb`
/// output-channel blocks and `steps` reduction steps per tile.
pub fn choose_tile(ow: usize, ocb: usize, steps: usize) -> (usize, usize) {
    let mut best = (f64::INFINITY, 1, 1);
    for nr in (1..=4).filter(|nr| ocb.is_multiple_of(*nr)) {
        let max_m = ((32 - nr) / nr).min(ow).min(28);
        for m in 1..=max_m {
            let (full, rem) = (ow / m, ow % m);
            let tile = |mm: usize| steps as f64 * step_cycles(mm, nr) + (mm * nr) as f64 * 2.0 + 40.0;
            let mut cost = full as f64 * tile(m);
            if rem > 0 {
                cost += tile(rem);
            }
            cost *= (ocb / nr) as f64;
            if cost < best.0 {
                best = (cost, m, nr);
            }
        }
    }
    (best.1, best.2)
}

impl WideConvSpec {
    /// Work items: groups of `nr` output blocks times output rows.
    pub fn items(&self) -> usize {
        self.ocb / self.nr * self.oh
    }

    /// Floats of packed weights per group.
    pub fn group_floats(&self) -> usize {
        self.cb_in * self.kernel[0] * self.kernel[1] * BLOCK * self.nr * BLOCK
    }

    /// Multiply-adds executed (padded channels included).
    pub fn macs(&self) -> u64 {
        (self.ocb * BLOCK * self.oh * self.ow * self.cb_in * BLOCK * self.kernel[0] * self.kernel[1]) as u64
    }

    /// The tile of `m` pixels.
    fn tile(&self, m: usize) -> TileSpec {
        TileSpec {
            m,
            nr: self.nr,
            kc: self.cb_in,
            kh: self.kernel[0],
            kw: self.kernel[1],
            sw: self.stride[1],
            in_row: self.wp as i64 * BB,
            in_plane: (self.hp * self.wp) as i64 * BB,
            out_plane: (self.oh * self.ow) as i64 * BB,
            first: true,
            last: true,
            residual: self.residual,
            relu: self.relu,
        }
    }

    /// The tiles the kernel calls: the full tile and, if the row does not divide, the
    /// remainder tile (passed as kernel arguments 5 and 6).
    pub fn tiles(&self) -> Vec<TileSpec> {
        let mut t = vec![self.tile(self.m)];
        if !self.ow.is_multiple_of(self.m) {
            t.push(self.tile(self.ow % self.m));
        }
        t
    }

    /// Packs a dense `[oc][ic][kh][kw]` weight in tile read order.
    pub fn pack(&self, oc: usize, ic: usize, dense: &[f32]) -> Vec<f32> {
        let [kh, kw] = self.kernel;
        let gs = self.group_floats();
        let mut p = vec![0.0f32; self.ocb / self.nr * gs];
        let mut src = dense.iter();
        for o in 0..oc {
            let (g, j, lane) = (o / (BLOCK * self.nr), o / BLOCK % self.nr, o % BLOCK);
            let obase = g * gs + j * BLOCK + lane;
            for i in 0..ic {
                for ky in 0..kh {
                    for kx in 0..kw {
                        let at = obase + ((((i / BLOCK) * kh + ky) * kw + kx) * BLOCK + i % BLOCK) * self.nr * BLOCK;
                        p[at] = src.next().copied().unwrap_or(0.0);
                    }
                }
            }
        }
        p
    }

    /// Emits the kernel body: args are out, in, weights, bias, residual (or null), full
    /// tile, remainder tile (or null).
    pub fn emit(&self, b: &mut FunctionBuilder, args: Value, begin: Value, end: Value, call_conv: CallConv) {
        let mut sig = Signature::new(call_conv);
        for _ in 0..5 {
            sig.params.push(AbiParam::new(types::I64));
        }
        let sigref = b.import_signature(sig);
        let ptrs: Vec<Value> = (0..7).map(|i| arg(b, args, i)).collect();
        let (out, inp, w, bias, res, full_tile, rem_tile) =
            (ptrs[0], ptrs[1], ptrs[2], ptrs[3], ptrs[4], ptrs[5], ptrs[6]);
        let [sh, sw] = self.stride;
        let plane = (self.oh * self.ow) as i64 * BB;
        let (full, rem) = (self.ow / self.m, self.ow % self.m);
        let m = self.m;
        for_range(b, begin, end, |b, item| {
            let g = b.ins().udiv_imm_u(item, self.oh as i64);
            let oy = b.ins().urem_imm_u(item, self.oh as i64);
            let wg = add_scaled(b, w, g, (self.group_floats() * 4) as i64);
            let bg = add_scaled(b, bias, g, self.nr as i64 * BB);
            let inrow = add_scaled(b, inp, oy, (sh * self.wp) as i64 * BB);
            let o1 = b.ins().imul_imm_s(g, self.nr as i64 * plane);
            let o2 = b.ins().imul_imm_s(oy, self.ow as i64 * BB);
            let ooff = b.ins().iadd(o1, o2);
            let outrow = b.ins().iadd(out, ooff);
            let resrow = if self.residual.is_some() { b.ins().iadd(res, ooff) } else { res };
            let call = |b: &mut FunctionBuilder, f: Value, t: Value, scale_in: i64, scale_out: i64| {
                let ip = add_scaled(b, inrow, t, scale_in);
                let op = add_scaled(b, outrow, t, scale_out);
                let rp = if self.residual.is_some() { add_scaled(b, resrow, t, scale_out) } else { resrow };
                b.ins().call_indirect(sigref, f, &[ip, wg, op, bg, rp]);
            };
            for_n(b, full, |b, t| call(b, full_tile, t, (m * sw) as i64 * BB, m as i64 * BB));
            if rem > 0 {
                let t = ic(b, full as i64);
                call(b, rem_tile, t, (m * sw) as i64 * BB, m as i64 * BB);
            }
        });
    }
}
