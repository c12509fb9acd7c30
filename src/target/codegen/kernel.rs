//! The closed set of kernels the code generator emits, and their CLIF.
//!
//! Kernel ABI (the target's default calling convention):
//! `extern "C" fn(args: *const *mut f32, begin: u64, end: u64)`. `args[0]` is the output,
//! then the inputs, then packed parameters (or helper function pointers), as each variant
//! documents. A kernel computes work items `begin..end` of [`KernelSpec::items`]; disjoint
//! item ranges write disjoint memory, so threads may run them at once.
//!
//! Tensors are `Nchw16c`: `[C/16][H][W][16]` with `C` rounded up to 16 and the extra
//! channels zero; vectors `[F]` are the same layout with `H = W = 1`. The byte address of
//! channel `c`, pixel `p` of a map with `P` pixels is `(c / 16) * P * 64 + p * 64 + (c % 16) * 4`.
//! One channel block of one pixel is one AVX-512 vector, or [`NV`] f32x4 vectors.

use crate::target::clif::*;
use crate::target::portable::conv::{ConvProvider, ConvSpec, DEFAULT_CONV};
use crate::target::tiled_conv::TiledConvSpec;
use crate::target::winograd::WinogradSpec;
use cranelift_codegen::ir::{AbiParam, Function, InstBuilder, Signature, Value, types};
use cranelift_codegen::isa::{CallConv, TargetFrontendConfig};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};

/// Elementwise kernels handle this many vectors per work item.
pub const CHUNK: usize = 256;

/// Which reduction along channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChannelOp {
    /// `exp(x - max) / sum`; `args[2]` is `expf`.
    Softmax,
    /// `x / max(||x||, eps)`, eps as f32 bits.
    L2Norm(u32),
}

/// One kernel, with every shape a compile-time constant. Equal specs share code.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KernelSpec {
    /// Direct convolution (also linear layers); args: out, in, packed weight, bias,
    /// (residual). Items: output-channel pairs x rows.
    Conv(ConvSpec),
    /// Convolution with AVX-512 or AVX2 tiles (the wide and avx2 tiers); args: out, in,
    /// packed weight, bias, residual (or null), full tile, remainder tile (or null).
    /// Items: channel-block groups x rows.
    TiledConv(TiledConvSpec),
    /// Winograd input transform ([`WinogradSpec::emit_input`]); args: out (`V`), input,
    /// interior and border transform tiles. Items: input blocks x tile rows.
    WinogradIn(WinogradSpec),
    /// Winograd output transform and epilogue ([`WinogradSpec::emit_output`]); args: out,
    /// `M`, bias, residual (or null), four transform tiles (or null). Items: output
    /// blocks x tile rows.
    WinogradOut(WinogradSpec),
    /// Converts an f32 map to bf16 into the interior of a zero-padded one
    /// ([`super::bf16::ToBf16`]). Args: out (bf16), in, conversion tile. Items: rows of
    /// channel blocks.
    ToBf16(super::bf16::ToBf16),
    /// Copies `[cb][h][w][4]` into the interior of `[cb][hp][wp][4]` at (`top`, `left`),
    /// filling the rest with `fill` (f32 bits). Args: out, in. Items: channel blocks.
    Pad {
        /// Channel blocks.
        cb: usize,
        /// Input height.
        h: usize,
        /// Input width.
        w: usize,
        /// Rows above.
        top: usize,
        /// Columns on the left.
        left: usize,
        /// Output height.
        hp: usize,
        /// Output width.
        wp: usize,
        /// Fill value bits.
        fill: u32,
    },
    /// Max or average pooling over a pre-padded input; args: out, in, [divisors per
    /// output pixel, for averages]. Items: channel blocks x output rows.
    Pool {
        /// Channel blocks.
        cb: usize,
        /// Input (padded) height.
        hp: usize,
        /// Input (padded) width.
        wp: usize,
        /// Window.
        kernel: [usize; 2],
        /// Stride.
        stride: [usize; 2],
        /// Output height.
        oh: usize,
        /// Output width.
        ow: usize,
        /// Max (else average).
        max: bool,
    },
    /// `y = x * s[c] + t[c]` (inference batch norm); args: out, in, s, t. Items: blocks.
    Affine {
        /// Channel blocks.
        cb: usize,
        /// Pixels per channel.
        pix: usize,
    },
    /// `x` rounded to bf16 (kept as f32) over `n` vectors ([`super::bf16::round_f32x4`]);
    /// args: out, in (may be the same). Items: chunks of [`CHUNK`].
    RoundBf16 {
        /// Vectors.
        n: usize,
    },
    /// `max(x, 0)` over `n` vectors; args: out, in. Items: chunks of [`CHUNK`].
    Relu {
        /// Vectors.
        n: usize,
    },
    /// `a + scale * b` over `n` vectors; args: out, a, b. Items: chunks.
    Add {
        /// Vectors.
        n: usize,
        /// Scale bits.
        scale: u32,
    },
    /// Copies `n` vectors; args: out, in. Items: chunks.
    Copy {
        /// Vectors.
        n: usize,
    },
    /// Mean over pixels; args: out, in. Items: channel blocks.
    GlobalAvg {
        /// Channel blocks.
        cb: usize,
        /// Pixels.
        pix: usize,
    },
    /// Local response normalisation; args: out, in, powf. Items: channels.
    Lrn {
        /// Channels.
        c: usize,
        /// Pixels.
        pix: usize,
        /// Window.
        size: usize,
        /// alpha bits.
        alpha: u32,
        /// beta bits.
        beta: u32,
        /// k bits.
        k: u32,
    },
    /// Softmax or L2 norm along channels; args: out, in, expf. Items: pixels.
    AlongChannels {
        /// Which.
        op: ChannelOp,
        /// Channels.
        c: usize,
        /// Pixels.
        pix: usize,
    },
    /// Copies channels `src_off..src_off + c` to channels `off..off + c` of a map with as
    /// many pixels (an unaligned concat or slice); args: out, in. Items: channels.
    CopyChannels {
        /// Channels copied.
        c: usize,
        /// Pixels.
        pix: usize,
        /// Destination channel offset.
        off: usize,
        /// Source channel offset.
        src_off: usize,
    },
    /// `[C,H,W]` blocked to plain `[C*H*W]`; args: out, in. Items: channels.
    Flatten {
        /// Channels.
        c: usize,
        /// Pixels.
        pix: usize,
    },
}

impl KernelSpec {
    /// Number of independent work items.
    pub fn items(&self) -> usize {
        match self {
            KernelSpec::Conv(s) => s.items(),
            KernelSpec::TiledConv(s) => s.items(),
            KernelSpec::WinogradIn(s) => s.in_items(),
            KernelSpec::WinogradOut(s) => s.out_items(),
            KernelSpec::Pad { cb, .. } | KernelSpec::Affine { cb, .. } | KernelSpec::GlobalAvg { cb, .. } => *cb,
            KernelSpec::ToBf16(s) => s.items(),
            KernelSpec::Pool { cb, oh, .. } => cb * oh,
            KernelSpec::Relu { n }
            | KernelSpec::RoundBf16 { n }
            | KernelSpec::Add { n, .. }
            | KernelSpec::Copy { n } => n.div_ceil(CHUNK),
            KernelSpec::Lrn { c, .. } | KernelSpec::CopyChannels { c, .. } | KernelSpec::Flatten { c, .. } => *c,
            KernelSpec::AlongChannels { pix, .. } => *pix,
        }
    }
}

/// The kernel signature for `call_conv`.
pub fn signature(call_conv: CallConv) -> Signature {
    let mut sig = Signature::new(call_conv);
    for _ in 0..3 {
        sig.params.push(AbiParam::new(types::I64));
    }
    sig
}

/// Builds the CLIF function of `spec` into `func` (whose signature must be [`signature`]).
pub fn build(
    spec: &KernelSpec,
    func: &mut Function,
    fbc: &mut FunctionBuilderContext,
    call_conv: CallConv,
    target: TargetFrontendConfig,
) {
    let mut fb = FunctionBuilder::new(func, fbc);
    let entry = fb.create_block();
    fb.append_block_params_for_function_params(entry);
    fb.switch_to_block(entry);
    let p = fb.block_params(entry).to_vec();
    let (args, begin, end) = (p[0], p[1], p[2]);
    let b = &mut fb;
    match spec {
        KernelSpec::Conv(s) => DEFAULT_CONV.emit(b, s, args, begin, end),
        KernelSpec::TiledConv(s) => s.emit(b, args, begin, end, call_conv),
        KernelSpec::WinogradIn(s) => s.emit_input(b, args, begin, end, call_conv),
        KernelSpec::WinogradOut(s) => s.emit_output(b, args, begin, end, call_conv),
        KernelSpec::ToBf16(s) => s.emit(b, args, begin, end, call_conv),
        KernelSpec::Pad { cb: _, h, w, top, left, hp, wp, fill } => {
            let (out, inp) = (arg(b, args, 0), arg(b, args, 1));
            let f = splat_const(b, f32::from_bits(*fill));
            let (h, w, top, left, hp, wp) = (*h, *w, *top, *left, *hp, *wp);
            for_range(b, begin, end, |b, cbi| {
                let src = add_scaled(b, inp, cbi, (h * w) as i64 * BB);
                let dst = add_scaled(b, out, cbi, (hp * wp) as i64 * BB);
                for_n(b, hp, |b, y| {
                    let row = add_scaled(b, dst, y, wp as i64 * BB);
                    let inside_lo = b.ins().icmp_imm_s(
                        cranelift_codegen::ir::condcodes::IntCC::SignedGreaterThanOrEqual,
                        y,
                        top as i64,
                    );
                    let inside_hi = b.ins().icmp_imm_s(
                        cranelift_codegen::ir::condcodes::IntCC::SignedLessThan,
                        y,
                        (top + h) as i64,
                    );
                    let inside = b.ins().band(inside_lo, inside_hi);
                    let (yes, no, join) = (b.create_block(), b.create_block(), b.create_block());
                    b.ins().brif(inside, yes, &[], no, &[]);
                    b.switch_to_block(yes);
                    fill_n(b, f, row, 0, left);
                    let yy = b.ins().iadd_imm_s(y, -(top as i64));
                    let srow = add_scaled(b, src, yy, w as i64 * BB);
                    let drow = add(b, row, left as i64 * BB);
                    for_n(b, w, |b, x| {
                        let sp = add_scaled(b, srow, x, BB);
                        let dp = add_scaled(b, drow, x, BB);
                        for k in 0..NV as i64 {
                            let v = ldv(b, sp, k * VB);
                            stv(b, v, dp, k * VB);
                        }
                    });
                    fill_n(b, f, row, left + w, wp - left - w);
                    b.ins().jump(join, &[]);
                    b.switch_to_block(no);
                    fill_n(b, f, row, 0, wp);
                    b.ins().jump(join, &[]);
                    b.switch_to_block(join);
                });
            });
        }
        KernelSpec::Pool { cb: _, hp, wp, kernel, stride, oh, ow, max } => {
            let (out, inp) = (arg(b, args, 0), arg(b, args, 1));
            let div = if *max { None } else { Some(arg(b, args, 2)) };
            let (hp, wp, oh, ow, max) = (*hp, *wp, *oh, *ow, *max);
            let [kh, kw] = *kernel;
            let [sh, sw] = *stride;
            for_range(b, begin, end, |b, item| {
                let cbi = b.ins().udiv_imm_u(item, oh as i64);
                let oy = b.ins().urem_imm_u(item, oh as i64);
                let ib = add_scaled(b, inp, cbi, (hp * wp) as i64 * BB);
                let inrow = add_scaled(b, ib, oy, (sh * wp) as i64 * BB);
                let ob = add_scaled(b, out, cbi, (oh * ow) as i64 * BB);
                let outrow = add_scaled(b, ob, oy, ow as i64 * BB);
                let drow = div.map(|d| add_scaled(b, d, oy, ow as i64 * 4));
                for_n(b, ow, |b, ox| {
                    let ip = add_scaled(b, inrow, ox, (sw as i64) * BB);
                    let op = add_scaled(b, outrow, ox, BB);
                    let ds = drow.map(|d| {
                        let dp = add_scaled(b, d, ox, 4);
                        let dv = lds(b, dp, 0);
                        b.ins().splat(V4, dv)
                    });
                    for k in 0..NV as i64 {
                        let mut acc = ldv(b, ip, k * VB);
                        for ky in 0..kh {
                            for kx in 0..kw {
                                if ky == 0 && kx == 0 {
                                    continue;
                                }
                                let v = ldv(b, ip, ((ky * wp + kx) as i64) * BB + k * VB);
                                acc = if max { pmax(b, v, acc) } else { b.ins().fadd(acc, v) };
                            }
                        }
                        if let Some(ds) = ds {
                            acc = b.ins().fdiv(acc, ds);
                        }
                        stv(b, acc, op, k * VB);
                    }
                });
            });
        }
        KernelSpec::Affine { cb: _, pix } => {
            let (out, inp, sp, tp) = (arg(b, args, 0), arg(b, args, 1), arg(b, args, 2), arg(b, args, 3));
            let pix = *pix;
            for_range(b, begin, end, |b, cbi| {
                let s = add_scaled(b, sp, cbi, BB);
                let s: Vec<Value> = (0..NV as i64).map(|k| ldv(b, s, k * VB)).collect();
                let t = add_scaled(b, tp, cbi, BB);
                let t: Vec<Value> = (0..NV as i64).map(|k| ldv(b, t, k * VB)).collect();
                let src = add_scaled(b, inp, cbi, pix as i64 * BB);
                let dst = add_scaled(b, out, cbi, pix as i64 * BB);
                for_n(b, pix, |b, p| {
                    let a = add_scaled(b, src, p, BB);
                    let d = add_scaled(b, dst, p, BB);
                    for k in 0..NV {
                        let x = ldv(b, a, k as i64 * VB);
                        let y = b.ins().fma(x, s[k], t[k]);
                        stv(b, y, d, k as i64 * VB);
                    }
                });
            });
        }
        KernelSpec::Relu { n } => {
            let z = splat_const(b, 0.0);
            elementwise(b, args, begin, end, *n, 1, &mut |b, x| pmax(b, x[0], z));
        }
        KernelSpec::Copy { n } => elementwise(b, args, begin, end, *n, 1, &mut |_, x| x[0]),
        KernelSpec::RoundBf16 { n } => {
            elementwise(b, args, begin, end, *n, 1, &mut |b, x| super::bf16::round_f32x4(b, x[0]))
        }
        KernelSpec::Add { n, scale } => {
            let s = splat_const(b, f32::from_bits(*scale));
            elementwise(b, args, begin, end, *n, 2, &mut |b, x| {
                let t = b.ins().fmul(s, x[1]);
                b.ins().fadd(x[0], t)
            });
        }
        KernelSpec::GlobalAvg { cb: _, pix } => {
            let (out, inp) = (arg(b, args, 0), arg(b, args, 1));
            let pix = *pix;
            let n = splat_const(b, pix as f32);
            for_range(b, begin, end, |b, cbi| {
                let src = add_scaled(b, inp, cbi, pix as i64 * BB);
                let z = splat_const(b, 0.0);
                let vars: Vec<_> = (0..NV)
                    .map(|_| {
                        let v = b.declare_var(V4);
                        b.def_var(v, z);
                        v
                    })
                    .collect();
                for_n(b, pix, |b, p| {
                    let a = add_scaled(b, src, p, BB);
                    for (k, &var) in vars.iter().enumerate() {
                        let x = ldv(b, a, k as i64 * VB);
                        let acc = b.use_var(var);
                        let r = b.ins().fadd(acc, x);
                        b.def_var(var, r);
                    }
                });
                let d = add_scaled(b, out, cbi, BB);
                for (k, &var) in vars.iter().enumerate() {
                    let acc = b.use_var(var);
                    let y = b.ins().fdiv(acc, n);
                    stv(b, y, d, k as i64 * VB);
                }
            });
        }
        KernelSpec::Lrn { c, pix, size, alpha, beta, k } => {
            let (out, inp, powf) = (arg(b, args, 0), arg(b, args, 1), arg(b, args, 2));
            let (c, pix, size) = (*c as i64, *pix, *size as i64);
            let beta = f32::from_bits(*beta);
            let mut sig = Signature::new(call_conv);
            sig.params.push(AbiParam::new(types::F32));
            sig.params.push(AbiParam::new(types::F32));
            sig.returns.push(AbiParam::new(types::F32));
            let sigref = b.import_signature(sig);
            let kc = b.ins().f32const(f32::from_bits(*k));
            let ac = b.ins().f32const(f32::from_bits(*alpha) / size as f32);
            let bc = b.ins().f32const(beta);
            for_range(b, begin, end, |b, ch| {
                let lo0 = b.ins().iadd_imm_s(ch, -(size / 2));
                let zero = ic(b, 0);
                let lo = b.ins().smax(lo0, zero);
                let hi0 = b.ins().iadd_imm_s(ch, (size - 1) / 2 + 1);
                let hi = smin_c(b, hi0, c);
                for_n(b, pix, |b, p| {
                    let sum = sum_of_squares(b, inp, p, pix, lo, hi);
                    let t = b.ins().fmul(ac, sum);
                    let d = b.ins().fadd(kc, t);
                    let pw = if beta == 0.75 {
                        let s1 = b.ins().sqrt(d);
                        let s2 = b.ins().sqrt(s1);
                        b.ins().fmul(s1, s2)
                    } else if beta == 0.5 {
                        b.ins().sqrt(d)
                    } else if beta == 1.0 {
                        d
                    } else {
                        let call = b.ins().call_indirect(sigref, powf, &[d, bc]);
                        b.inst_results(call)[0]
                    };
                    let a = scalar_addr(b, inp, ch, p, pix);
                    let x = lds(b, a, 0);
                    let y = b.ins().fdiv(x, pw);
                    let o = scalar_addr(b, out, ch, p, pix);
                    sts(b, y, o, 0);
                });
            });
        }
        KernelSpec::AlongChannels { op, c, pix } => {
            let (out, inp, expf) = (arg(b, args, 0), arg(b, args, 1), arg(b, args, 2));
            let (c, pix, op) = (*c, *pix, *op);
            let mut sig = Signature::new(call_conv);
            sig.params.push(AbiParam::new(types::F32));
            sig.returns.push(AbiParam::new(types::F32));
            let sigref = b.import_signature(sig);
            for_range(b, begin, end, |b, p| {
                let acc = b.declare_var(types::F32);
                match op {
                    ChannelOp::Softmax => {
                        let m0 = b.ins().f32const(f32::NEG_INFINITY);
                        b.def_var(acc, m0);
                        for_n(b, c, |b, ch| {
                            let a = scalar_addr(b, inp, ch, p, pix);
                            let x = lds(b, a, 0);
                            let m = b.use_var(acc);
                            let r = b.ins().fmax(m, x);
                            b.def_var(acc, r);
                        });
                        let m = b.use_var(acc);
                        let sum = b.declare_var(types::F32);
                        let z = b.ins().f32const(0.0);
                        b.def_var(sum, z);
                        for_n(b, c, |b, ch| {
                            let a = scalar_addr(b, inp, ch, p, pix);
                            let x = lds(b, a, 0);
                            let d = b.ins().fsub(x, m);
                            let call = b.ins().call_indirect(sigref, expf, &[d]);
                            let e = b.inst_results(call)[0];
                            let o = scalar_addr(b, out, ch, p, pix);
                            sts(b, e, o, 0);
                            let s = b.use_var(sum);
                            let r = b.ins().fadd(s, e);
                            b.def_var(sum, r);
                        });
                        let s = b.use_var(sum);
                        for_n(b, c, |b, ch| {
                            let o = scalar_addr(b, out, ch, p, pix);
                            let e = lds(b, o, 0);
                            let y = b.ins().fdiv(e, s);
                            sts(b, y, o, 0);
                        });
                    }
                    ChannelOp::L2Norm(eps) => {
                        let (zero, cv) = (ic(b, 0), ic(b, c as i64));
                        let s = sum_of_squares(b, inp, p, pix, zero, cv);
                        let n = b.ins().sqrt(s);
                        let e = b.ins().f32const(f32::from_bits(eps));
                        let d = b.ins().fmax(n, e);
                        for_n(b, c, |b, ch| {
                            let a = scalar_addr(b, inp, ch, p, pix);
                            let x = lds(b, a, 0);
                            let y = b.ins().fdiv(x, d);
                            let o = scalar_addr(b, out, ch, p, pix);
                            sts(b, y, o, 0);
                        });
                    }
                }
            });
        }
        KernelSpec::CopyChannels { c: _, pix, off, src_off } => {
            let (out, inp) = (arg(b, args, 0), arg(b, args, 1));
            let (pix, off, src_off) = (*pix, *off as i64, *src_off as i64);
            for_range(b, begin, end, |b, ch| {
                let dc = b.ins().iadd_imm_s(ch, off);
                let sc = b.ins().iadd_imm_s(ch, src_off);
                for_n(b, pix, |b, p| {
                    let a = scalar_addr(b, inp, sc, p, pix);
                    let x = lds(b, a, 0);
                    let o = scalar_addr(b, out, dc, p, pix);
                    sts(b, x, o, 0);
                });
            });
        }
        KernelSpec::Flatten { c: _, pix } => {
            let (out, inp) = (arg(b, args, 0), arg(b, args, 1));
            let pix = *pix;
            for_range(b, begin, end, |b, ch| {
                let drow = add_scaled(b, out, ch, pix as i64 * 4);
                for_n(b, pix, |b, p| {
                    let a = scalar_addr(b, inp, ch, p, pix);
                    let x = lds(b, a, 0);
                    let o = add_scaled(b, drow, p, 4);
                    sts(b, x, o, 0);
                });
            });
        }
    }
    b.ins().return_(&[]);
    b.seal_all_blocks();
    fb.finalize(target);
}

/// Byte address of channel `c`, pixel `p` of a blocked map with `pix` pixels.
/// Emits `sum over channels lo..hi of x[ch][p]^2` (f32, run-time bounds) and returns it.
fn sum_of_squares(b: &mut FunctionBuilder, inp: Value, p: Value, pix: usize, lo: Value, hi: Value) -> Value {
    let var = b.declare_var(types::F32);
    let z = b.ins().f32const(0.0);
    b.def_var(var, z);
    for_range(b, lo, hi, |b, cc| {
        let a = scalar_addr(b, inp, cc, p, pix);
        let x = lds(b, a, 0);
        let sq = b.ins().fmul(x, x);
        let s = b.use_var(var);
        let r = b.ins().fadd(s, sq);
        b.def_var(var, r);
    });
    b.use_var(var)
}

fn scalar_addr(b: &mut FunctionBuilder, base: Value, c: Value, p: Value, pix: usize) -> Value {
    let blk = b.ins().ushr_imm_u(c, BLOCK.trailing_zeros() as i64);
    let lane = b.ins().band_imm_u(c, BLOCK as i64 - 1);
    let a = add_scaled(b, base, blk, pix as i64 * BB);
    let a = add_scaled(b, a, p, BB);
    add_scaled(b, a, lane, 4)
}

/// Stores `fill` into pixels `first..first + n` (all lanes of the block) after `row`.
fn fill_n(b: &mut FunctionBuilder, fill: Value, row: Value, first: usize, n: usize) {
    if n <= 2 {
        for x in first * NV..(first + n) * NV {
            stv(b, fill, row, x as i64 * VB);
        }
    } else {
        let base = add(b, row, first as i64 * BB);
        for_n(b, n, |b, x| {
            let p = add_scaled(b, base, x, BB);
            for k in 0..NV as i64 {
                stv(b, fill, p, k * VB);
            }
        });
    }
}

/// `out[v] = f(in_0[v], .., in_{k-1}[v])` for vectors `v` of the items' chunks.
fn elementwise(
    b: &mut FunctionBuilder,
    args: Value,
    begin: Value,
    end: Value,
    n: usize,
    k: usize,
    f: &mut dyn FnMut(&mut FunctionBuilder, &[Value]) -> Value,
) {
    let out = arg(b, args, 0);
    let ins: Vec<Value> = (1..=k).map(|i| arg(b, args, i)).collect();
    let s = b.ins().imul_imm_s(begin, CHUNK as i64);
    let e0 = b.ins().imul_imm_s(end, CHUNK as i64);
    let e = smin_c(b, e0, n as i64);
    for_range(b, s, e, |b, v| {
        let xs: Vec<Value> = ins
            .iter()
            .map(|&p| {
                let a = add_scaled(b, p, v, VB);
                ldv(b, a, 0)
            })
            .collect();
        let y = f(b, &xs);
        let o = add_scaled(b, out, v, VB);
        stv(b, y, o, 0);
    });
}
