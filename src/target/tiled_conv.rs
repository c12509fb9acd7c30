//! Convolution on the wide tier: Cranelift emits the loops over work items and tiles and
//! calls an AVX-512 or AVX2 micro-tile of [`super::avx512`] or [`super::avx2`] for each tile.
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
//!   if ow % m > 0:      tile_rem(..)               (the AVX-512/AVX2 tiles: iced-x86)
//! ```
//!
//! Weights are packed `[g][cb_in][kh][kw][l = ic % 16][j < nr][16]`, the order a tile reads
//! them (see [`super::tile::TileSpec`]).

use super::isa::Isa;
use super::tile::{Dtype, TileSpec};
use crate::ir::precision::bf16_bits;
use crate::target::clif::*;
use cranelift_codegen::ir::{AbiParam, InstBuilder, Signature, Value, types};
use cranelift_codegen::isa::CallConv;
use cranelift_frontend::FunctionBuilder;

/// Geometry of one wide convolution; equal specs share code.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TiledConvSpec {
    /// Input channel blocks.
    pub cb_in: usize,
    /// Channels per input block: 16 (`Nchw16c`), or `C < 16` for a compact `[H][W][C]`
    /// input (then `cb_in = 1`).
    pub lanes: usize,
    /// The element type of the input and the packed weights ([`Dtype::Bf16`]: the input is
    /// a bf16 map, [`super::codegen::bf16`]).
    pub dtype: Dtype,
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
    /// Every output row has weights of its own, packed `[oy][g]..` (the matrix products of
    /// a Winograd convolution, one per position, [`super::winograd`]); else all rows share
    /// them.
    pub row_weights: bool,
}

/// The largest `m` of an `nr`-block tile on `isa` (its registers: [`super::isa::TileIsa::max_m`]).
pub fn max_m(isa: Isa, nr: usize) -> usize {
    isa.tiles().max_m(nr)
}

/// The tile shape `(m, nr)` of least estimated time on `isa` for rows of `ow` pixels, `ocb`
/// output-channel blocks and `steps` reduction steps per tile, by the ISA's cost model
/// ([`super::isa::TileIsa::step_cycles`]).
pub fn choose_tile(isa: Isa, ow: usize, ocb: usize, steps: usize) -> (usize, usize) {
    let mut best = (f64::INFINITY, 1, 1);
    // Stores of the epilogue: one per register.
    let regs_per_block = isa.tiles().regs_per_block() as f64;
    for nr in (1..=4).filter(|nr| ocb.is_multiple_of(*nr)) {
        for m in 1..=max_m(isa, nr).min(ow) {
            let (full, rem) = (ow / m, ow % m);
            let tile = |mm: usize| {
                steps as f64 * isa.tiles().step_cycles(mm, nr) + (mm * nr) as f64 * 2.0 * regs_per_block + 40.0
            };
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

/// Packed columns of one group: the `t`-th (`t < count`) is column `first + t * step` of
/// the dense weight's rows of the group's output channels (`[o][ic * kh * kw]`, one value
/// per channel, `nr * 16` of them, zero past the last channel), stored at float
/// `at + t * nr * 16` of the group. Lane `lane` of input block `cb` at tap `(ky, kx)` is
/// column `((cb * lanes + lane) * kh + ky) * kw + kx`: a run steps over the lanes, and the
/// runs of a group, in order, write it front to back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnRun {
    /// The first column.
    pub first: usize,
    /// Columns between two packed columns.
    pub step: usize,
    /// Packed columns.
    pub count: usize,
    /// Offset of the first in the group, in floats.
    pub at: usize,
}

impl TiledConvSpec {
    /// Work items: groups of `nr` output blocks times output rows.
    pub fn items(&self) -> usize {
        self.ocb / self.nr * self.oh
    }

    /// Weights per group (elements of [`Self::dtype`]).
    pub fn group_elems(&self) -> usize {
        self.cb_in * self.kernel[0] * self.kernel[1] * self.lanes * self.nr * BLOCK
    }

    /// Floats (4-byte words) of packed weights per group: bf16 weights take half.
    pub fn group_floats(&self) -> usize {
        self.group_elems() * self.dtype.bytes() / 4
    }

    /// Multiply-adds executed (padded channels included).
    pub fn macs(&self) -> u64 {
        (self.ocb * BLOCK * self.oh * self.ow * self.cb_in * self.lanes * self.kernel[0] * self.kernel[1]) as u64
    }

    /// Bytes of one input pixel of one channel block.
    fn pixel_bytes(&self) -> i64 {
        (self.lanes * self.dtype.bytes()) as i64
    }

    /// The tile of `m` pixels.
    fn tile(&self, m: usize) -> TileSpec {
        TileSpec {
            m,
            nr: self.nr,
            kc: self.cb_in,
            lanes: self.lanes,
            dtype: self.dtype,
            kh: self.kernel[0],
            kw: self.kernel[1],
            sw: self.stride[1],
            in_row: self.wp as i64 * self.pixel_bytes(),
            in_plane: (self.hp * self.wp) as i64 * self.pixel_bytes(),
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

    /// Floats of all packed weights.
    pub fn packed_floats(&self) -> usize {
        self.ocb / self.nr * self.block_floats()
    }

    /// Floats of the packed weights of one group of output channels: [`Self::group_floats`],
    /// once per output row for [`Self::row_weights`] (`[g][oy]..`).
    pub fn block_floats(&self) -> usize {
        if self.row_weights { self.oh * self.group_floats() } else { self.group_floats() }
    }

    /// Packs a dense `[oc][ic][kh][kw]` weight in tile read order,
    /// `[g][cb][ky][kx][lane][j][o % 16]`, into `out` (zeroed, [`Self::packed_floats`]
    /// long); channels beyond `oc` and `ic` stay zero. For [`Self::row_weights`], see
    /// [`Self::pack_rows_into`].
    pub fn pack_into(&self, oc: usize, ic: usize, dense: &[f32], out: &mut [f32]) {
        let row = ic * self.kernel[0] * self.kernel[1];
        let width = self.nr * BLOCK;
        if self.group_floats() == 0 {
            return;
        }
        let runs = self.column_runs(ic);
        let mut f32s = vec![0.0; if self.dtype == Dtype::F32 { 0 } else { self.group_elems() }];
        for (g, out) in out.chunks_exact_mut(self.group_floats()).enumerate() {
            let rows = self.group_rows(g, oc);
            let group = if self.dtype == Dtype::F32 { &mut *out } else { &mut f32s[..] };
            for run in &runs {
                for t in 0..run.count {
                    let column = &mut group[run.at + t * width..][..width];
                    for (k, o) in rows.clone().enumerate() {
                        column[k] = dense[o * row + run.first + t * run.step];
                    }
                }
            }
            if self.dtype == Dtype::Bf16 {
                self.to_bf16_pairs(&f32s, out);
                f32s.fill(0.0);
            }
        }
    }

    /// One group packed in f32 (`[cb][ky][kx][lane][j][16]`, [`Self::group_elems`]) to the
    /// bf16 tiles' order, `[cb][ky][kx][lane/2][j][16][2]`, in `out` (as many words as
    /// pairs): the even lane in the low half of each word, rounded as
    /// [`crate::ir::precision::bf16_bits`] rounds.
    pub fn to_bf16_pairs(&self, group: &[f32], out: &mut [f32]) {
        let width = self.nr * BLOCK;
        for (pair, out) in group.chunks_exact(2 * width).zip(out.chunks_exact_mut(width)) {
            let (even, odd) = pair.split_at(width);
            for ((o, &e), &d) in out.iter_mut().zip(even).zip(odd) {
                *o = f32::from_bits(bf16_bits(e) as u32 | (bf16_bits(d) as u32) << 16);
            }
        }
    }

    /// Packs the weights of [`Self::row_weights`] rows, dense `[oy][oc][ic]` (a 1x1
    /// kernel), as `[g][oy][cb][lane][j][o % 16]` into `out` (zeroed,
    /// [`Self::packed_floats`] long).
    pub fn pack_rows_into(&self, oc: usize, ic: usize, dense: &[f32], out: &mut [f32]) {
        let shared = TiledConvSpec { row_weights: false, ..self.clone() };
        let gf = self.group_floats();
        if gf == 0 {
            return;
        }
        let mut one = vec![0.0; shared.packed_floats()];
        for oy in 0..self.oh {
            shared.pack_into(oc, ic, &dense[oy * oc * ic..(oy + 1) * oc * ic], &mut one);
            for (g, group) in one.chunks_exact(gf).enumerate() {
                out[(g * self.oh + oy) * gf..][..gf].copy_from_slice(group);
            }
        }
    }

    /// The output channels of group `g` of a layer with `oc` of them: up to `nr * 16` rows
    /// of the dense weight, empty past `oc`.
    pub fn group_rows(&self, g: usize, oc: usize) -> std::ops::Range<usize> {
        let o0 = g * self.nr * BLOCK;
        o0.min(oc)..(o0 + self.nr * BLOCK).min(oc)
    }

    /// The runs of packed columns that make up each group of a layer with `ic` input
    /// channels (see [`ColumnRun`]); the columns of input channels past `ic` stay zero.
    pub fn column_runs(&self, ic: usize) -> Vec<ColumnRun> {
        let [kh, kw] = self.kernel;
        let l = self.lanes;
        let mut runs = Vec::new();
        for cb in 0..self.cb_in {
            let count = l.min(ic.saturating_sub(cb * l));
            for ky in 0..kh {
                for kx in 0..kw {
                    if count > 0 {
                        runs.push(ColumnRun {
                            first: ((cb * l * kh) + ky) * kw + kx,
                            step: kh * kw,
                            count,
                            at: (((cb * kh + ky) * kw + kx) * l) * self.nr * BLOCK,
                        });
                    }
                }
            }
        }
        runs
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
            // Row weights are `[g][oy]`: the item's own.
            let gw = if self.row_weights { item } else { g };
            let wg = add_scaled(b, w, gw, (self.group_floats() * 4) as i64);
            let bg = add_scaled(b, bias, g, self.nr as i64 * BB);
            let px = self.pixel_bytes();
            let inrow = add_scaled(b, inp, oy, (sh * self.wp) as i64 * px);
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
            for_n(b, full, |b, t| call(b, full_tile, t, (m * sw) as i64 * px, m as i64 * BB));
            if rem > 0 {
                let t = ic(b, full as i64);
                call(b, rem_tile, t, (m * sw) as i64 * px, m as i64 * BB);
            }
        });
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A spec of `cb_in` blocks of `lanes`, a `k` kernel and `ocb / nr` groups.
    pub(crate) fn spec(cb_in: usize, lanes: usize, k: [usize; 2], ocb: usize, nr: usize) -> TiledConvSpec {
        TiledConvSpec {
            cb_in,
            lanes,
            dtype: Dtype::F32,
            hp: 9,
            wp: 9,
            kernel: k,
            stride: [1, 1],
            oh: 7,
            ow: 7,
            ocb,
            nr,
            m: 7,
            residual: None,
            relu: false,
            row_weights: false,
        }
    }

    /// `pack_into` puts weight `[o][i][ky][kx]` at `[g][cb][ky][kx][lane][j][o % 16]` and
    /// zeros where there is no channel.
    #[test]
    fn packing_follows_the_tile_layout() {
        for (s, oc, ic) in [
            (spec(2, 16, [3, 3], 4, 2), 50, 20),
            (spec(1, 3, [7, 1], 2, 1), 32, 3),
            (spec(3, 16, [1, 1], 3, 3), 48, 48),
            (spec(1, 16, [1, 2], 1, 1), 5, 16),
        ] {
            let [kh, kw] = s.kernel;
            let dense: Vec<f32> = (0..oc * ic * kh * kw).map(|v| v as f32 + 1.0).collect();
            let mut out = vec![0.0; s.packed_floats()];
            s.pack_into(oc, ic, &dense, &mut out);
            let mut at = 0;
            for g in 0..s.ocb / s.nr {
                for cb in 0..s.cb_in {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            for lane in 0..s.lanes {
                                for j in 0..s.nr {
                                    for k in 0..BLOCK {
                                        let (o, i) = ((g * s.nr + j) * BLOCK + k, cb * s.lanes + lane);
                                        let want = if o < oc && i < ic {
                                            dense[((o * ic + i) * kh + ky) * kw + kx]
                                        } else {
                                            0.0
                                        };
                                        assert_eq!(
                                            out[at], want,
                                            "{s:?} {oc} {ic}: g {g} cb {cb} {ky}{kx} {lane} {j} {k}"
                                        );
                                        at += 1;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Every shape `choose_tile` picks fits the registers of its ISA and divides the blocks.
    #[test]
    fn chosen_tiles_are_valid() {
        for isa in [Isa::Avx512, Isa::Avx2] {
            for ow in [1, 2, 3, 5, 7, 8, 17, 35, 71, 147, 512] {
                for ocb in 1..=12 {
                    for steps in [3, 16, 144, 4608] {
                        let (m, nr) = choose_tile(isa, ow, ocb, steps);
                        assert!(ocb.is_multiple_of(nr) && m <= ow, "{isa:?} {ow} {ocb}: {m}x{nr}");
                        let s = TileSpec {
                            m,
                            nr,
                            kc: 1,
                            lanes: 16,
                            dtype: crate::target::tile::Dtype::F32,
                            kh: 1,
                            kw: 1,
                            sw: 1,
                            in_row: 0,
                            in_plane: 0,
                            out_plane: 64,
                            first: true,
                            last: true,
                            residual: None,
                            relu: false,
                        };
                        s.validate(isa).unwrap();
                    }
                }
            }
        }
        // The 6x16 AVX2 shape for a long row of a 1x1 convolution with one output block.
        assert_eq!(choose_tile(Isa::Avx2, 36, 1, 288), (6, 1));
    }
}
