//! The AVX-512 implementation of the tile contract ([`crate::target::tile`]): convolution
//! micro-tiles emitted as x86-64 machine code with iced-x86's code assembler.
//!
//! ```text
//!     acc[i][j] (zmm) = first ? bias[j] : out[j][i]
//!     for c < kc:                     counted loop (r9), rdi += in_plane
//!       for ky < kh:                  counted loop (r10), rdi += in_row
//!         for kx < kw, l < 16:        unrolled
//!           w[j] = vmovups [rsi]  (j < nr)
//!           acc[i][j] += w[j] * bcst(inp[(i*sw + kx)*16 + l])   (one FMA each)
//!     out[j][i] = relu?(res[j][i] + s*acc[i][j])   when last, else acc[i][j]
//! ```
//!
//! The broadcast is folded into each FMA (a `{1to16}` memory operand) or done once per
//! pixel by `vbroadcastss` ([`Broadcast`]); the second is faster as soon as `nr >= 2`.
//!
//! Register use: accumulators are `zmm0 ..`, the `nr` weight vectors follow them; only
//! caller-saved integer registers are touched (the arguments `rdi rsi rdx rcx r8`, and
//! `rax r9 r10 r11`), and the code ends with `vzeroupper; ret`.
//!
//! Addressing is kept short, since the unrolled body is the whole loop: EVEX compresses a
//! displacement to one byte when it is a multiple of the access size (4 bytes for a
//! broadcast, 64 for a vector) within ±128 of them. So the input pointer is biased by
//! +512 and up to three more bases (`rax r11 rcx`, +1024 each) are set per kernel row,
//! and the weight pointer is biased by +8192 and advanced by 16384 whenever the next
//! vector falls out of reach. Weights then stream linearly through `rsi`.

use super::tile::{Broadcast, Dtype, TileSpec};
use super::x86::frame::{Frame, InputBases, Width};
use super::x86::{Emitted, TileIsa, Z};
use crate::cpu::Cpu;
use iced_x86::IcedError;
use iced_x86::code_asm::*;

pub(crate) mod bf16;

/// AVX-512F tiles: 32 zmm registers of 16 floats, one per output block and pixel.
pub struct Avx512;

impl TileIsa for Avx512 {
    fn needs(&self) -> &'static str {
        "AVX-512F"
    }

    fn available(&self, cpu: &Cpu) -> bool {
        cpu.avx512f
    }

    fn emits(&self, dtype: Dtype) -> bool {
        bf16::emits(dtype)
    }

    fn runs(&self, dtype: Dtype, cpu: &Cpu) -> Result<(), &'static str> {
        bf16::runs(dtype, cpu)
    }

    fn blocking(&self, m: usize, nr: usize) -> Result<usize, String> {
        let regs = m.saturating_mul(nr).saturating_add(nr);
        if regs > 32 {
            return Err(format!("needs {regs} zmm registers (m*nr + nr), there are 32"));
        }
        Ok(regs)
    }

    fn max_m(&self, nr: usize) -> usize {
        ((32 - nr) / nr).min(28)
    }

    /// Two FMA ports and at least one FMA latency (4 cycles) when too few accumulators are
    /// independent; three load ports: every FMA loads its broadcast, plus `nr` weight
    /// vectors.
    fn step_cycles(&self, m: usize, nr: usize) -> f64 {
        let fmas = (m * nr) as f64;
        (fmas / 2.0).max((fmas + nr as f64) / 3.0).max(4.0)
    }

    fn regs_per_block(&self) -> usize {
        1
    }

    fn broadcast(&self, spec: &TileSpec, b: Broadcast) -> Broadcast {
        if b == Broadcast::Register && spec.m * spec.nr < 31 { b } else { Broadcast::Embedded }
    }

    fn emit_conv(&self, spec: &TileSpec, b: Broadcast) -> Result<Emitted, IcedError> {
        emit_avx512(spec, b)
    }
}

/// Bias of the input pointer and spacing of the extra input bases (bytes): a broadcast
/// displacement compresses to disp8 within [-512, 508].
const IN_BIAS: i64 = 512;
const IN_SPAN: i64 = 1024;
/// Bias and step of the weight pointer: a vector displacement compresses within [-8192, 8128].
const W_BIAS: i64 = 8192;
const W_REACH: i64 = 8128;

/// The AVX-512 tile: the shared [`Frame`] around an unrolled body of FMAs, one zmm per
/// output block and pixel.
fn emit_avx512(spec: &TileSpec, broadcast: Broadcast) -> Result<Emitted, IcedError> {
    let &TileSpec { m, nr, kh, kw, sw, .. } = spec;
    let px = spec.pixel_bytes() as i64; // bytes per input pixel
    let steps = spec.steps_per_tap(); // lanes, or pairs of bf16 lanes
    let madd = bf16::MulAdd::of(spec.dtype);
    let broadcast = Avx512.broadcast(spec, broadcast);
    let frame = Frame::new(spec, Width::Zmm);
    let acc = |i: usize, j: usize| Z[frame.acc(i, j)];
    // Weight vectors held in registers; with Register, the broadcast takes the next one,
    // and when that is the last zmm the last weight column is read by the FMAs instead.
    let nw = match broadcast {
        Broadcast::Embedded => nr,
        Broadcast::Register => nr.min(31 - m * nr),
    };
    let wreg = |j: usize| Z[m * nr + j];
    let areg = Z[(m * nr + nw).min(31)]; // used only by Register, which guarantees m*nr + nw < 32

    let mut a = CodeAssembler::new(64)?;
    frame.load_accumulators(&mut a)?;

    // Input bases: offset `off` from the row start is read from base k = off / IN_SPAN as
    // disp `off - k*IN_SPAN - IN_BIAS`; beyond the last base, with a 32-bit displacement.
    let bases = InputBases::new(spec, IN_BIAS, IN_SPAN);
    let in_addr = |off: i64| {
        let (base, disp) = bases.at(off);
        dword_bcst(base + disp)
    };
    let in_addr_plain = |off: i64| {
        let (base, disp) = bases.at(off);
        dword_ptr(base + disp)
    };
    let row_w = (kw * steps * nr * 64) as i64; // weight bytes of one kernel row

    let mut loops = Vec::new();
    let heads = frame.open_loops(&mut a, &bases, W_BIAS)?;
    // One kernel row: kx and l unrolled.
    // A 1x1 tile reads each input block's `m` pixels once, a plane away from the previous
    // block's: the hardware prefetchers, which follow a page, do not see it coming, so
    // the next block's lines are asked for one block (16 reduction steps) ahead.
    if kh == 1 && kw == 1 && spec.kc > 1 {
        for i in 0..m {
            a.prefetcht0(byte_ptr(rdi + (spec.in_plane - IN_BIAS + (i * sw) as i64 * px)))?;
        }
    }
    let mut w_at = W_BIAS; // where rsi points, relative to this kernel row's weights
    for kx in 0..kw {
        for l in 0..steps {
            let step = ((kx * steps + l) * nr * 64) as i64;
            if step + (nr as i64 - 1) * 64 - w_at > W_REACH {
                a.add(rsi, (2 * W_BIAS) as i32)?;
                w_at += 2 * W_BIAS;
            }
            let w_mem = |j: usize| zmmword_ptr(rsi + (step + j as i64 * 64 - w_at));
            for j in 0..nw {
                a.vmovups(wreg(j), w_mem(j))?;
            }
            for i in 0..m {
                let off = (i * sw + kx) as i64 * px + (l * 4) as i64;
                match broadcast {
                    Broadcast::Embedded => {
                        for j in 0..nr {
                            madd.bcst(&mut a, acc(i, j), wreg(j), in_addr(off))?;
                        }
                    }
                    Broadcast::Register => {
                        a.vbroadcastss(areg, in_addr_plain(off))?;
                        for j in 0..nr {
                            if j < nw {
                                madd.reg(&mut a, acc(i, j), wreg(j), areg)?;
                            } else {
                                madd.mem(&mut a, acc(i, j), areg, w_mem(j))?;
                            }
                        }
                    }
                }
            }
        }
    }
    a.add(rsi, (row_w + W_BIAS - w_at) as i32)?;
    frame.close_loops(&mut a, heads, &mut loops)?;
    // The weight registers are free now.
    frame.finish(a, m * nr, loops)
}
