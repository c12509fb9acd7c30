//! The conversion into bf16 that feeds the bf16 convolution tiles: an f32 map `[cb][h][w][16]`
//! into the interior of a bf16 map `[cb][hp][wp][16]` at (`top`, `left`), zero around it
//! (the convolution's padding), every value rounded as [`crate::ir::precision::bf16_bits`]
//! rounds. The loops are Cranelift's; each interior row is one call of the AVX-512 conversion
//! tile (`vcvtne2ps2bf16`, [`crate::target::tileset::Tile::ToBf16`]).
//!
//! [`round_f32x4`] is the same rounding in Cranelift's f32x4, for f32 kernels that compute on
//! bf16 values (the compact stem's input, rounded in place):
//!
//! ```text
//!     bits = f32 bits of x                       (i32x4)
//!     r    = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
//!     r    = isnan(x) ? (bits >> 16) | 0x40 : r
//!     r    = denormal(x) ? sign(x) : r          (|x| < 2^-126 becomes ±0, as the hardware)
//! ```

use crate::target::clif::*;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{AbiParam, Endianness, InstBuilder, MemFlagsData, Signature, Value, types};
use cranelift_codegen::isa::CallConv;
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
    let r = b.ins().bitselect(is_nan, nan, r);
    // Denormals (exponent bits zero) to a signed zero.
    let exp = b.ins().iconst(types::I32, 0x7F80_0000);
    let exp = b.ins().splat(types::I32X4, exp);
    let e = b.ins().band(bits, exp);
    let zero = b.ins().iconst(types::I32, 0);
    let zero = b.ins().splat(types::I32X4, zero);
    let denormal = b.ins().icmp(IntCC::Equal, e, zero);
    let sign = b.ins().ushr_imm_u(bits, 31);
    let sign = b.ins().ishl_imm_u(sign, 15);
    b.ins().bitselect(denormal, sign, r)
}

/// The four floats of `v` rounded to bf16, as f32 (the low halves zero): for an f32 kernel
/// that computes on bf16 values.
pub fn round_f32x4(b: &mut FunctionBuilder, v: Value) -> Value {
    let r = round(b, v);
    let bits = b.ins().ishl_imm_u(r, 16);
    b.ins().bitcast(V4, little(), bits)
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

    /// Emits the loop over items `begin..end` ([`Self::items`]): args out (bf16), in (f32),
    /// the conversion tile of `w` pixels.
    pub fn emit(&self, b: &mut FunctionBuilder, args: Value, begin: Value, end: Value, call_conv: CallConv) {
        let (out, inp, tile) = (arg(b, args, 0), arg(b, args, 1), arg(b, args, 2));
        let mut sig = Signature::new(call_conv);
        for _ in 0..5 {
            sig.params.push(AbiParam::new(types::I64));
        }
        let sigref = b.import_signature(sig);
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
            let null = ic(b, 0);
            b.ins().call_indirect(sigref, tile, &[srow, null, drow, null, null]);
            zero(b, row, left + w, wp - left - w);
            b.ins().jump(join, &[]);
            b.switch_to_block(no);
            zero(b, row, 0, wp);
            b.ins().jump(join, &[]);
            b.switch_to_block(join);
        });
    }
}
