//! The conversion into bf16 that feeds the bf16 convolution tiles: an f32 map `[cb][h][w][16]`
//! into the interior of a bf16 map `[cb][hp][wp][16]` at (`top`, `left`), zero around it
//! (the convolution's padding), every value rounded to nearest even as
//! [`crate::ir::precision::bf16_bits`] rounds (NaN stays a quiet NaN).
//!
//! ```text
//!     bits = f32 bits of x                       (i32x4)
//!     r    = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
//!     r    = isnan(x) ? (bits >> 16) | 0x40 : r
//!     two i32x4 of r -> one i16x8 (unsigned saturating narrow: r < 2^16 already)
//! ```

use crate::target::clif::*;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{Endianness, InstBuilder, MemFlagsData, Value, types};
use cranelift_frontend::FunctionBuilder;

/// Bytes of one bf16 pixel of one channel block.
pub const BB16: i64 = (BLOCK * 2) as i64;

/// The geometry of one conversion (see [`super::kernel::KernelSpec::ToBf16`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ToBf16 {
    /// Channel blocks.
    pub cb: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Zero rows above.
    pub top: usize,
    /// Zero columns left.
    pub left: usize,
    /// Output height.
    pub hp: usize,
    /// Output width.
    pub wp: usize,
}

fn little() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}

/// The bf16 bits of the four floats of `v`, in the low halves of an i32x4.
fn round(b: &mut FunctionBuilder, v: Value) -> Value {
    let bits = b.ins().bitcast(types::I32X4, little(), v);
    let hi = b.ins().ushr_imm_u(bits, 16);
    let one = b.ins().iconst(types::I32, 1);
    let one = b.ins().splat(types::I32X4, one);
    let lsb = b.ins().band(hi, one);
    let half = b.ins().iconst(types::I32, 0x7FFF);
    let half = b.ins().splat(types::I32X4, half);
    let bias = b.ins().iadd(half, lsb);
    let sum = b.ins().iadd(bits, bias);
    let r = b.ins().ushr_imm_u(sum, 16);
    let quiet = b.ins().iconst(types::I32, 0x40);
    let quiet = b.ins().splat(types::I32X4, quiet);
    let nan = b.ins().bor(hi, quiet);
    let is_nan = b.ins().fcmp(FloatCC::Unordered, v, v);
    let is_nan = b.ins().bitcast(types::I32X4, little(), is_nan);
    b.ins().bitselect(is_nan, nan, r)
}

/// The four floats of `v` rounded to bf16, as f32 (the low halves zero): for an f32 kernel
/// that computes on bf16 values.
pub fn round_f32x4(b: &mut FunctionBuilder, v: Value) -> Value {
    let r = round(b, v);
    let bits = b.ins().ishl_imm_u(r, 16);
    b.ins().bitcast(V4, little(), bits)
}

/// One pixel of one block: 16 floats at `src` to 16 bf16 at `dst`.
fn pixel(b: &mut FunctionBuilder, src: Value, dst: Value) {
    for half in 0..2i64 {
        let lo = ldv(b, src, half * 2 * VB);
        let hi = ldv(b, src, (half * 2 + 1) * VB);
        let (lo, hi) = (round(b, lo), round(b, hi));
        let packed = b.ins().unarrow(lo, hi);
        b.ins().store(mf(), packed, dst, (half * VB) as i32);
    }
}

/// Zeroes `n` bf16 pixels from pixel `first` of `row`.
fn zero(b: &mut FunctionBuilder, row: Value, first: usize, n: usize) {
    if n == 0 {
        return;
    }
    let z = splat_const(b, 0.0);
    let base = add(b, row, first as i64 * BB16);
    for_n(b, n, |b, x| {
        let p = add_scaled(b, base, x, BB16);
        stv(b, z, p, 0);
        stv(b, z, p, VB);
    });
}

impl ToBf16 {
    /// Work items: one output row of one channel block each (so that a map of one block
    /// still runs on every thread).
    pub fn items(&self) -> usize {
        self.cb * self.hp
    }

    /// Emits the loop over items `begin..end` ([`Self::items`]): args out (bf16), in (f32).
    pub fn emit(&self, b: &mut FunctionBuilder, args: Value, begin: Value, end: Value) {
        let (out, inp) = (arg(b, args, 0), arg(b, args, 1));
        let ToBf16 { h, w, top, left, hp, wp, .. } = *self;
        for_range(b, begin, end, |b, item| {
            let cbi = b.ins().udiv_imm_u(item, hp as i64);
            let y = b.ins().urem_imm_u(item, hp as i64);
            let src = add_scaled(b, inp, cbi, (h * w) as i64 * BB);
            let dst = add_scaled(b, out, cbi, (hp * wp) as i64 * BB16);
            let row = add_scaled(b, dst, y, wp as i64 * BB16);
            let lo = b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, y, top as i64);
            let hi = b.ins().icmp_imm_s(IntCC::SignedLessThan, y, (top + h) as i64);
            let inside = b.ins().band(lo, hi);
            let (yes, no, join) = (b.create_block(), b.create_block(), b.create_block());
            b.ins().brif(inside, yes, &[], no, &[]);
            b.switch_to_block(yes);
            zero(b, row, 0, left);
            let yy = b.ins().iadd_imm_s(y, -(top as i64));
            let srow = add_scaled(b, src, yy, w as i64 * BB);
            let drow = add(b, row, left as i64 * BB16);
            for_n(b, w, |b, x| {
                let sp = add_scaled(b, srow, x, BB);
                let dp = add_scaled(b, drow, x, BB16);
                pixel(b, sp, dp);
            });
            zero(b, row, left + w, wp - left - w);
            b.ins().jump(join, &[]);
            b.switch_to_block(no);
            zero(b, row, 0, wp);
            b.ins().jump(join, &[]);
            b.switch_to_block(join);
        });
    }
}
