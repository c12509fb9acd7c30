//! The Cranelift loops of a Winograd convolution's transforms: over the tiles of a band,
//! calling one transform tile ([`WinogradSpec::input_tiles`], [`WinogradSpec::output_tiles`])
//! per tile.

use super::WinogradSpec;
use crate::target::clif::*;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{AbiParam, InstBuilder, SigRef, Signature, StackSlotData, StackSlotKind, Value, types};
use cranelift_codegen::isa::CallConv;
use cranelift_frontend::FunctionBuilder;

impl WinogradSpec {
    /// Emits the input transform loops: args out (`V`, `[cb][P][T][16]`), in (`[cb][h][w][16]`),
    /// the two [`Self::input_tiles`], the band's first tile row. Item: one tile row of the
    /// band, of one input block. An interior
    /// tile is transformed in place; a border tile's pixels are first copied into a zeroed
    /// `[nh][nw][16]` stack buffer (so no padding step copies the whole input).
    pub fn emit_input(&self, b: &mut FunctionBuilder, args: Value, begin: Value, end: Value, call_conv: CallConv) {
        let (out, inp) = (arg(b, args, 0), arg(b, args, 1));
        let (inner, border) = (arg(b, args, 2), arg(b, args, 3));
        let sig = tile_signature(b, call_conv);
        let ([mh, mw], [nh, nw], [_, tw]) = (self.m, self.n(), self.tiles());
        let [[ylo, yhi], [xlo, xhi]] = self.interior();
        let (h, w) = (self.h as i64, self.w as i64);
        let (t, p) = (self.t() as i64, self.positions() as i64);
        let slot = b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, (nh * nw * 64) as u32, 6));
        let (band, first) = (self.band as i64, arg(b, args, 4));
        for_range(b, begin, end, |b, item| {
            let cbi = b.ins().udiv_imm_u(item, band);
            let local = b.ins().urem_imm_u(item, band);
            let ty = b.ins().iadd(local, first);
            let plane = add_scaled(b, inp, cbi, h * w * BB);
            let dst = add_scaled(b, out, cbi, p * t * BB);
            let dst = add_scaled(b, dst, local, tw as i64 * BB);
            let null = ic(b, 0);
            // First input row and column of tile (ty, tx): ty*mh - top, tx*mw - left.
            let y0 = b.ins().imul_imm_s(ty, mh as i64);
            let y0 = b.ins().iadd_imm_s(y0, -(self.top as i64));
            let border_tile = |b: &mut FunctionBuilder, tx: Value| {
                let buf = b.ins().stack_addr(types::I64, slot, 0);
                let z = splat_const(b, 0.0);
                for k in 0..(nh * nw * NV) as i64 {
                    stv(b, z, buf, k * VB);
                }
                let x0 = b.ins().imul_imm_s(tx, mw as i64);
                let x0 = b.ins().iadd_imm_s(x0, -(self.left as i64));
                let zero = ic(b, 0);
                let (ya, yb) = (b.ins().smax(y0, zero), b.ins().iadd_imm_s(y0, nh as i64));
                let yb = smin_c(b, yb, h);
                let (xa, xb) = (b.ins().smax(x0, zero), b.ins().iadd_imm_s(x0, nw as i64));
                let xb = smin_c(b, xb, w);
                for_range(b, ya, yb, |b, y| {
                    let srow = add_scaled(b, plane, y, w * BB);
                    let dy = b.ins().isub(y, y0);
                    let drow = add_scaled(b, buf, dy, nw as i64 * BB);
                    for_range(b, xa, xb, |b, x| {
                        let sp = add_scaled(b, srow, x, BB);
                        let dx = b.ins().isub(x, x0);
                        let dp = add_scaled(b, drow, dx, BB);
                        for k in 0..NV as i64 {
                            let v = ldv(b, sp, k * VB);
                            stv(b, v, dp, k * VB);
                        }
                    });
                });
                let d = add_scaled(b, dst, tx, BB);
                b.ins().call_indirect(sig, border, &[buf, null, d, null, null]);
            };
            let inner_tile = |b: &mut FunctionBuilder, tx: Value| {
                let x0 = b.ins().imul_imm_s(tx, mw as i64);
                let x0 = b.ins().iadd_imm_s(x0, -(self.left as i64));
                let row = add_scaled(b, plane, y0, w * BB);
                let s = add_scaled(b, row, x0, BB);
                let d = add_scaled(b, dst, tx, BB);
                b.ins().call_indirect(sig, inner, &[s, null, d, null, null]);
            };
            let lo = b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, ty, ylo as i64);
            let hi = b.ins().icmp_imm_s(IntCC::SignedLessThan, ty, yhi as i64);
            let inside = b.ins().band(lo, hi);
            let (yes, no, join) = (b.create_block(), b.create_block(), b.create_block());
            b.ins().brif(inside, yes, &[], no, &[]);
            b.switch_to_block(yes);
            for_range_c(b, 0, xlo, |b, tx| border_tile(b, tx));
            for_range_c(b, xlo, xhi, |b, tx| inner_tile(b, tx));
            for_range_c(b, xhi, tw, |b, tx| border_tile(b, tx));
            b.ins().jump(join, &[]);
            b.switch_to_block(no);
            for_range_c(b, 0, tw, |b, tx| border_tile(b, tx));
            b.ins().jump(join, &[]);
            b.switch_to_block(join);
        });
    }

    /// Emits the output transform loops: args out (`[ocb][oh][ow][16]`), `M`
    /// (`[ocb][P][T][16]`), bias (`[ocb*16]`), residual (or null), then the four
    /// [`Self::output_tiles`] (null when absent), the band's first tile row. Item: one tile
    /// row of the band, of one output block.
    pub fn emit_output(&self, b: &mut FunctionBuilder, args: Value, begin: Value, end: Value, call_conv: CallConv) {
        let ptrs: Vec<Value> = (0..8).map(|i| arg(b, args, i)).collect();
        let (out, mm, bias, res) = (ptrs[0], ptrs[1], ptrs[2], ptrs[3]);
        let sig = tile_signature(b, call_conv);
        let ([mh, mw], [th, tw]) = (self.m, self.tiles());
        let (t, p) = (self.t() as i64, self.positions() as i64);
        let (oh, ow) = (self.oh as i64, self.ow as i64);
        let [_, er, ec, _] = self.output_tiles().map(|t| t.is_some());
        let (band, first) = (self.band as i64, arg(b, args, 8));
        for_range(b, begin, end, |b, item| {
            let g = b.ins().udiv_imm_u(item, band);
            let local = b.ins().urem_imm_u(item, band);
            let ty = b.ins().iadd(local, first);
            let bp = add_scaled(b, bias, g, BB);
            let src = add_scaled(b, mm, g, p * t * BB);
            let src = add_scaled(b, src, local, tw as i64 * BB);
            let o1 = b.ins().imul_imm_s(g, oh * ow * BB);
            let o2 = b.ins().imul_imm_s(ty, mh as i64 * ow * BB);
            let ooff = b.ins().iadd(o1, o2);
            let dst = b.ins().iadd(out, ooff);
            let rdst = if self.residual.is_some() { b.ins().iadd(res, ooff) } else { res };
            let null = ic(b, 0);
            let call = |b: &mut FunctionBuilder, tile: Value, tx: Value| {
                let s = add_scaled(b, src, tx, BB);
                let d = add_scaled(b, dst, tx, mw as i64 * BB);
                let r = if self.residual.is_some() { add_scaled(b, rdst, tx, mw as i64 * BB) } else { rdst };
                b.ins().call_indirect(sig, tile, &[s, null, d, bp, r]);
            };
            // One tile row with `full` and `edge` tiles (edge: the last column's).
            let row = |b: &mut FunctionBuilder, full: Value, edge: Value| {
                let n = if ec { tw - 1 } else { tw };
                for_n(b, n, |b, tx| call(b, full, tx));
                if ec {
                    let tx = ic(b, tw as i64 - 1);
                    call(b, edge, tx);
                }
            };
            if er {
                let is_last = b.ins().icmp_imm_s(IntCC::Equal, ty, th as i64 - 1);
                let (yes, no, join) = (b.create_block(), b.create_block(), b.create_block());
                b.ins().brif(is_last, yes, &[], no, &[]);
                b.switch_to_block(yes);
                row(b, ptrs[5], ptrs[7]);
                b.ins().jump(join, &[]);
                b.switch_to_block(no);
                row(b, ptrs[4], ptrs[6]);
                b.ins().jump(join, &[]);
                b.switch_to_block(join);
            } else {
                row(b, ptrs[4], ptrs[6]);
            }
        });
    }
}

/// `for i in lo..hi` for compile-time bounds (nothing when empty).
fn for_range_c(b: &mut FunctionBuilder, lo: usize, hi: usize, body: impl FnMut(&mut FunctionBuilder, Value)) {
    if lo < hi {
        let (s, e) = (ic(b, lo as i64), ic(b, hi as i64));
        for_range(b, s, e, body);
    }
}

/// The signature of a [`crate::target::tile::TileFn`].
fn tile_signature(b: &mut FunctionBuilder, call_conv: CallConv) -> SigRef {
    let mut sig = Signature::new(call_conv);
    for _ in 0..5 {
        sig.params.push(AbiParam::new(types::I64));
    }
    b.import_signature(sig)
}
