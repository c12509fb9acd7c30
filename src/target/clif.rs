//! Small CLIF-building helpers shared by the kernels: loops, loads and stores, constants.
//!
//! Every kernel is built with Cranelift `Variable`s rather than block parameters, so loops
//! read like the Rust loops they replace; `seal_all_blocks` runs once at the end.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{Endianness, InstBuilder, MemFlagsData, Type, Value, types};
use cranelift_frontend::FunctionBuilder;

/// 4 lanes of f32: the only vector type the kernels use (x86-64 SSE/AVX and aarch64 NEON).
pub const V4: Type = types::F32X4;
/// Byte size of one [`V4`].
pub const VB: i64 = 16;
/// Channels per block ([`crate::ir::layout::BLOCK`]).
pub use crate::ir::layout::BLOCK;
/// Byte size of one pixel of one channel block.
pub const BB: i64 = (BLOCK * 4) as i64;
/// [`V4`] vectors per pixel of one channel block.
pub const NV: usize = BLOCK / 4;

/// Flags of every load and store: in bounds and aligned by construction of the plan.
pub fn mf() -> MemFlagsData {
    MemFlagsData::trusted()
}

/// `base + off` (bytes) for a 64-bit pointer.
pub fn add(b: &mut FunctionBuilder, base: Value, off: i64) -> Value {
    if off == 0 { base } else { b.ins().iadd_imm_s(base, off) }
}

/// `base + idx * scale` (bytes).
pub fn add_scaled(b: &mut FunctionBuilder, base: Value, idx: Value, scale: i64) -> Value {
    let o = b.ins().imul_imm_s(idx, scale);
    b.ins().iadd(base, o)
}

/// Loads the `i`th pointer of the argument table.
pub fn arg(b: &mut FunctionBuilder, args: Value, i: usize) -> Value {
    b.ins().load(types::I64, mf(), args, (i * 8) as i32)
}

/// Loads a vector at `p + off`.
pub fn ldv(b: &mut FunctionBuilder, p: Value, off: i64) -> Value {
    b.ins().load(V4, mf(), p, off as i32)
}

/// Stores vector `v` at `p + off`.
pub fn stv(b: &mut FunctionBuilder, v: Value, p: Value, off: i64) {
    b.ins().store(mf(), v, p, off as i32);
}

/// Loads a scalar f32 at `p + off`.
pub fn lds(b: &mut FunctionBuilder, p: Value, off: i64) -> Value {
    b.ins().load(types::F32, mf(), p, off as i32)
}

/// Stores a scalar f32 at `p + off`.
pub fn sts(b: &mut FunctionBuilder, v: Value, p: Value, off: i64) {
    b.ins().store(mf(), v, p, off as i32);
}

/// A vector with `x` in every lane.
pub fn splat_const(b: &mut FunctionBuilder, x: f32) -> Value {
    let s = b.ins().f32const(x);
    b.ins().splat(V4, s)
}

/// An i64 constant.
pub fn ic(b: &mut FunctionBuilder, x: i64) -> Value {
    b.ins().iconst(types::I64, x)
}

/// Emits `for i in start..end { body(i) }` (signed i64 bounds, evaluated at run time).
pub fn for_range(b: &mut FunctionBuilder, start: Value, end: Value, mut body: impl FnMut(&mut FunctionBuilder, Value)) {
    let var = b.declare_var(types::I64);
    b.def_var(var, start);
    let header = b.create_block();
    let blk = b.create_block();
    let exit = b.create_block();
    b.ins().jump(header, &[]);
    b.switch_to_block(header);
    let i = b.use_var(var);
    let c = b.ins().icmp(IntCC::SignedLessThan, i, end);
    b.ins().brif(c, blk, &[], exit, &[]);
    b.switch_to_block(blk);
    body(b, i);
    let next = b.ins().iadd_imm_s(i, 1);
    b.def_var(var, next);
    b.ins().jump(header, &[]);
    b.switch_to_block(exit);
}

/// Emits `for i in 0..n { body(i) }` for a compile-time `n` (nothing when `n == 0`).
pub fn for_n(b: &mut FunctionBuilder, n: usize, body: impl FnMut(&mut FunctionBuilder, Value)) {
    if n == 0 {
        return;
    }
    let s = ic(b, 0);
    let e = ic(b, n as i64);
    for_range(b, s, e, body);
}

/// `min(x, c)` for a signed i64 value and a constant.
pub fn smin_c(b: &mut FunctionBuilder, x: Value, c: i64) -> Value {
    let cv = ic(b, c);
    b.ins().smin(x, cv)
}

/// `if y < x { x } else { y }` per lane: the pattern Cranelift's x86-64 backend lowers to one
/// `maxps` (its `fmax` is a NaN-propagating sequence of about eight instructions). Like Rust's
/// `f32::max` (the reference interpreter's), it does not propagate a NaN in `x`.
pub fn pmax(b: &mut FunctionBuilder, x: Value, y: Value) -> Value {
    let lt = b.ins().fcmp(FloatCC::LessThan, y, x);
    let mask = b.ins().bitcast(V4, MemFlagsData::new().with_endianness(Endianness::Little), lt);
    b.ins().bitselect(mask, x, y)
}
