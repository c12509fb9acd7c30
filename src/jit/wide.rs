//! The wide tiers: AVX-512 and AVX2 convolution micro-tiles, emitted as x86-64 machine
//! code with iced-x86's code assembler.
//!
//! A tile computes `m` output pixels of one row times `nr` blocks of 16 output channels,
//! reducing `kc` blocks of 16 input channels over a `kh x kw` window, on tensors laid out
//! NCHW16c (`[C/16][H][W][16]` f32). Everything about a tile, strides included, is a
//! compile-time constant of its [`TileSpec`]; the caller (Cranelift-generated loops over
//! rows, tiles and reduction chunks) passes only the five pointers of [`TileFn`].
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
//!
//! AVX2 ([`Isa::Avx2`], for CPUs without AVX-512) follows the same contract with 8-float
//! ymm halves: two accumulators per pixel and block, `vbroadcastss` once per pixel (VEX
//! has no embedded broadcast), weight halves in the registers left (the FMAs read the rest
//! from memory), so `2*m*nr + 1 <= 16` (6x1, 3x2, 2x3, 1x4, or 7x1 with one weight half
//! in a register). VEX displacements are plain bytes ([-128, 127]): the input bases are
//! 256 bytes apart and the weight pointer moves every 256 bytes (see `emit_avx2`).
//!
//! Many tiles share one executable region ([`WideKernels`] -> [`WideCode`]): mapped
//! read-write, every tile encoded at its final address, then remapped read-execute once
//! (never writable and executable at once). The code assembler only builds the instruction
//! lists; they are encoded in one pass with iced's `Encoder` (4x faster than its block
//! encoder), which is possible because the only branches are loop back-edges.
//!
//! Emission is portable Rust; running is not: on other targets, and on x86-64 without
//! AVX-512F (AVX2 and FMA), [`available`] is false and [`WideKernels::finish`] returns an
//! error.

use super::wide_transform::TransformSpec;
use crate::error::{Error, Result};
use iced_x86::code_asm::*;
use iced_x86::{Code, Encoder, IcedError, Instruction};
use memmap2::{Mmap, MmapMut};
use std::collections::HashMap;

/// One convolution micro-tile: `m` pixels of an output row x `nr*16` output channels.
///
/// Tensors are NCHW16c; strides are in bytes. For `i < m`, `j < nr`, `o < 16` a tile
/// computes (indices in f32 elements):
///
/// ```text
/// acc = first ? bias[j*16+o] : out[(j*out_plane)/4 + i*16 + o]
/// for c < kc, ky < kh, kx < kw, l < 16:
///    acc += inp[(c*in_plane + ky*in_row)/4 + (i*sw + kx)*16 + l]
///         * w[((((c*kh + ky)*kw + kx)*16 + l)*nr + j)*16 + o]
/// if last { if let Some(s) = residual { acc = res[(j*out_plane)/4 + i*16 + o] + s*acc }
///           if relu { acc = max(acc, 0) } }
/// out[(j*out_plane)/4 + i*16 + o] = acc
/// ```
///
/// so the weights of a tile are packed `[c][ky][kx][l][j][16]`. [`TileSpec::validate`]
/// states the limits.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TileSpec {
    /// Output pixels of one row per tile, `>= 1`.
    pub m: usize,
    /// Output-channel blocks of 16 per tile, `1..=4`, with `m*nr + nr <= 32` on AVX-512
    /// (the zmm registers: e.g. 14x2, 9x3, 7x4, 28x1) and `2*m*nr + 1 <= 16` on AVX2
    /// (6x1, 7x1, 3x2, 2x3, 1x4).
    pub nr: usize,
    /// Input-channel blocks reduced, `>= 1`.
    pub kc: usize,
    /// Channels of one input block, `1..=16`: 16 for the `Nchw16c` layout, fewer for a
    /// compact `[H][W][C]` input with `C < 16` (a network's RGB image, `kc = 1`). Pixels
    /// are `lanes * 4` bytes apart.
    pub lanes: usize,
    /// Kernel height, `>= 1`.
    pub kh: usize,
    /// Kernel width, `>= 1` (unrolled: see [`MAX_BODY_INSTRUCTIONS`]).
    pub kw: usize,
    /// Stride along W in pixels, `>= 1`.
    pub sw: usize,
    /// Bytes between consecutive input rows (may be negative).
    pub in_row: i64,
    /// Bytes between consecutive input channel blocks (may be negative).
    pub in_plane: i64,
    /// Bytes between consecutive output channel blocks; the residual uses the same offsets.
    pub out_plane: i64,
    /// Accumulators start from `bias[j*16..]` (else from the current values in `out`).
    pub first: bool,
    /// Apply the epilogue (else store the raw partial sums).
    pub last: bool,
    /// f32 bits of a scale `s`: `y = res + s*acc` (only when `last`).
    pub residual: Option<u32>,
    /// `y = max(y, 0)` after the residual (only when `last`).
    pub relu: bool,
}

/// A tile's entry point: `(inp, w, out, bias, res)`, the System V calling convention on
/// x86-64. `res` may be null when the spec has no residual, `bias` when it is not `first`.
///
/// Valid only while the [`WideCode`] it came from is alive.
pub type TileFn = unsafe extern "C" fn(*const f32, *const f32, *mut f32, *const f32, *const f32);

/// The longest unrolled `kx x 16` body a tile may have, in instructions
/// (`kw * 16 * (m*nr + nr)`; 14x2 with a 7-wide kernel is 3360). Keeps code size sane.
pub const MAX_BODY_INSTRUCTIONS: usize = 16384;

/// How the input scalar reaches the FMAs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Broadcast {
    /// `vfmadd231ps acc, w, dword_bcst [inp]`: the broadcast is folded into every FMA.
    Embedded,
    /// `vbroadcastss a, [inp]` once per pixel, then register FMAs. Needs one more zmm:
    /// when `m*nr + nr = 32` the FMAs of the last weight column read it from memory
    /// (7x4: 28 accumulators, 3 weights, 1 broadcast); tiles with `m*nr >= 31` fall back to
    /// [`Broadcast::Embedded`].
    Register,
}

impl Broadcast {
    /// The faster one for `spec`, as `examples/wide_bench.rs` measures it (median GFLOP/s
    /// of 40 runs, separate vs folded): with `nr >= 2` a separate broadcast (1x1 conv: 7x4
    /// 156 vs 131, 5x4 156 vs 123, 14x2 151 vs 145; 3x3 conv: 9x3 160 vs 149, 14x2 equal),
    /// unless more than a quarter of the FMAs would read their weights from memory for
    /// want of registers (15x2: half of them; 1x1 1088->192, 289 pixels: 93 vs 106 folded,
    /// 2026-11-29); with `nr = 1` the folded one (28x1: 119 vs 139; the broadcast would be
    /// one more load uop per FMA).
    pub fn preferred(spec: &TileSpec) -> Broadcast {
        let (m, nr) = (spec.m, spec.nr);
        // Weight columns the separate broadcast leaves in registers (see `emit_avx512`).
        let held = nr.min(31usize.saturating_sub(m * nr));
        if nr >= 2 && 4 * (nr - held) <= nr { Broadcast::Register } else { Broadcast::Embedded }
    }
}

/// The instruction set a tile is emitted for; one per [`WideKernels`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// AVX-512F: 32 zmm registers of 16 floats, one per output block.
    Avx512,
    /// AVX2 and FMA (VEX encoded): 16 ymm registers of 8 floats, two per output block.
    Avx2,
}

impl Isa {
    /// Both, widest first.
    pub const ALL: [Isa; 2] = [Isa::Avx512, Isa::Avx2];

    /// Whether this machine runs tiles of this ISA: x86-64 with AVX-512F, or with AVX2 and
    /// FMA, and the System V calling convention.
    pub fn available(self) -> bool {
        #[cfg(all(target_arch = "x86_64", not(windows)))]
        {
            match self {
                Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
                Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            }
        }
        #[cfg(not(all(target_arch = "x86_64", not(windows))))]
        {
            false
        }
    }

    /// The widest ISA this machine runs, if any.
    pub fn best() -> Option<Isa> {
        Isa::ALL.into_iter().find(|i| i.available())
    }

    /// What the CPU needs, for messages.
    pub fn needs(self) -> &'static str {
        match self {
            Isa::Avx512 => "AVX-512F",
            Isa::Avx2 => "AVX2 and FMA",
        }
    }
}

/// Whether this machine runs tiles of `isa` (see [`Isa::available`]).
pub fn available(isa: Isa) -> bool {
    isa.available()
}

/// Bias of the input pointer and spacing of the extra input bases (bytes): a broadcast
/// displacement compresses to disp8 within [-512, 508].
const IN_BIAS: i64 = 512;
const IN_SPAN: i64 = 1024;
/// Bias and step of the weight pointer: a vector displacement compresses within [-8192, 8128].
const W_BIAS: i64 = 8192;
const W_REACH: i64 = 8128;

fn fits_i32(v: i64) -> bool {
    i32::try_from(v).is_ok()
}

impl TileSpec {
    /// Multiply-adds times two: the FLOPs of one call (of a valid spec).
    pub fn flops(&self) -> u64 {
        2 * (self.m * self.nr * 16 * self.kc * self.kh * self.kw * self.lanes) as u64
    }

    /// Bytes of packed weights one call reads (`kc*kh*kw*lanes*nr*16` f32; of a valid spec).
    pub fn weight_bytes(&self) -> usize {
        self.kc * self.kh * self.kw * self.lanes * self.nr * 64
    }

    /// Checks the limits of the contract for `isa` (the registers: see [`TileSpec::nr`])
    /// and that every displacement and immediate the code needs fits in 32 bits.
    pub fn validate(&self, isa: Isa) -> Result<()> {
        let bad = |why: String| Err(Error::Invalid(format!("wide tile {self:?}: {why}")));
        if self.m == 0 || self.kc == 0 || self.kh == 0 || self.kw == 0 || self.sw == 0 {
            return bad("m, kc, kh, kw and sw must be at least 1".into());
        }
        if !(1..=16).contains(&self.lanes) {
            return bad(format!("lanes must be 1..=16, found {}", self.lanes));
        }
        if !(1..=4).contains(&self.nr) {
            return bad(format!("nr must be 1..=4, found {}", self.nr));
        }
        let mnr = self.m.saturating_mul(self.nr);
        // Instructions per input lane of one tap, weight loads included.
        let per_lane = match isa {
            Isa::Avx512 => {
                let regs = mnr.saturating_add(self.nr);
                if regs > 32 {
                    return bad(format!("needs {regs} zmm registers (m*nr + nr), there are 32"));
                }
                regs
            }
            Isa::Avx2 => {
                let regs = mnr.saturating_mul(2).saturating_add(1);
                if regs > 16 {
                    return bad(format!("needs {regs} ymm registers (2*m*nr + 1), there are 16"));
                }
                self.m * (2 * self.nr + 1) + 2 * self.nr
            }
        };
        let body = self.kw.saturating_mul(self.lanes * per_lane);
        if body > MAX_BODY_INSTRUCTIONS {
            return bad(format!("an unrolled kernel row of {body} instructions exceeds {MAX_BODY_INSTRUCTIONS}"));
        }
        // m, nr and kw are small now; sw, kc and the strides may be anything.
        let big = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        let in_reach = big((self.m - 1).saturating_mul(self.sw).saturating_add(self.kw).saturating_mul(self.lanes * 4));
        let w_bytes = big(self.kc.saturating_mul(self.kh).saturating_mul(self.kw * self.lanes * self.nr * 64));
        let back = if self.kh > 1 { self.in_row.checked_mul(big(self.kh)) } else { Some(0) };
        let c_step = back.and_then(|b| self.in_plane.checked_sub(b));
        let out_lo = self.out_plane.min(0).checked_mul(self.nr as i64 - 1);
        let out_hi =
            self.out_plane.max(0).checked_mul(self.nr as i64 - 1).and_then(|v| v.checked_add(self.m as i64 * 64));
        let ok = fits_i32(self.in_row)
            && fits_i32(self.in_plane)
            && c_step.is_some_and(fits_i32)
            && out_lo.is_some_and(fits_i32)
            && out_hi.is_some_and(fits_i32)
            && fits_i32(in_reach)
            && fits_i32(w_bytes);
        if !ok {
            return bad("a stride or extent exceeds the ±2 GiB a 32-bit displacement reaches".into());
        }
        Ok(())
    }

    /// The broadcast `b` asks for on `isa`, if the registers allow it. AVX2 has no
    /// embedded broadcast: always [`Broadcast::Register`].
    fn broadcast(&self, isa: Isa, b: Broadcast) -> Broadcast {
        match isa {
            Isa::Avx2 => Broadcast::Register,
            Isa::Avx512 if b == Broadcast::Register && self.m * self.nr < 31 => b,
            Isa::Avx512 => Broadcast::Embedded,
        }
    }
}

/// The zmm registers by number.
pub(super) const Z: [AsmRegisterZmm; 32] = [
    zmm0, zmm1, zmm2, zmm3, zmm4, zmm5, zmm6, zmm7, zmm8, zmm9, zmm10, zmm11, zmm12, zmm13, zmm14, zmm15, zmm16, zmm17,
    zmm18, zmm19, zmm20, zmm21, zmm22, zmm23, zmm24, zmm25, zmm26, zmm27, zmm28, zmm29, zmm30, zmm31,
];

/// Input base registers: `rdi` (the biased row pointer), then `rax r11 rcx` at +1024 each.
/// `rcx` (bias) is dead once the accumulators are loaded.
const IN_BASES: [AsmRegister64; 4] = [rdi, rax, r11, rcx];

/// The instructions of one tile. `loops` holds the backward branches as
/// `(index of a placeholder jnz, index of the loop's first instruction)`; [`encode`] fills
/// in their addresses.
pub(super) struct Emitted {
    pub(super) code: Vec<Instruction>,
    pub(super) loops: Vec<(usize, usize)>,
}

/// Emits the instructions of one tile (`spec` already validated for `isa`).
fn emit(spec: &TileSpec, isa: Isa, broadcast: Broadcast) -> std::result::Result<Emitted, IcedError> {
    match isa {
        Isa::Avx512 => emit_avx512(spec, broadcast),
        Isa::Avx2 => emit_avx2(spec),
    }
}

/// The AVX-512 tile.
fn emit_avx512(spec: &TileSpec, broadcast: Broadcast) -> std::result::Result<Emitted, IcedError> {
    let &TileSpec { m, nr, kc, lanes, kh, kw, sw, out_plane, .. } = spec;
    let px = (lanes * 4) as i64; // bytes per input pixel
    let broadcast = spec.broadcast(Isa::Avx512, broadcast);
    let acc = |i: usize, j: usize| Z[i * nr + j];
    // Weight vectors held in registers; with Register, the broadcast takes the next one,
    // and when that is the last zmm the last weight column is read by the FMAs instead.
    let nw = match broadcast {
        Broadcast::Embedded => nr,
        Broadcast::Register => nr.min(31 - m * nr),
    };
    let wreg = |j: usize| Z[m * nr + j];
    let areg = Z[(m * nr + nw).min(31)]; // used only by Register, which guarantees m*nr + nw < 32
    let out_off = |i: usize, j: usize| j as i64 * out_plane + i as i64 * 64;

    let mut a = CodeAssembler::new(64)?;

    // Accumulators.
    for i in 0..m {
        for j in 0..nr {
            if spec.first {
                a.vmovups(acc(i, j), zmmword_ptr(rcx + j as i64 * 64))?;
            } else {
                a.vmovups(acc(i, j), zmmword_ptr(rdx + out_off(i, j)))?;
            }
        }
    }

    // Input bases: offset `off` from the row start is read from base k = off / IN_SPAN as
    // disp `off - k*IN_SPAN - IN_BIAS`; beyond the last base, with a 32-bit displacement.
    let max_in = ((m - 1) * sw + kw - 1) as i64 * px + (lanes as i64 - 1) * 4;
    let n_bases = ((max_in / IN_SPAN) as usize + 1).min(IN_BASES.len());
    let in_addr = |off: i64| {
        let k = ((off / IN_SPAN) as usize).min(n_bases - 1);
        dword_bcst(IN_BASES[k] + (off - k as i64 * IN_SPAN - IN_BIAS))
    };
    let in_addr_plain = |off: i64| {
        let k = ((off / IN_SPAN) as usize).min(n_bases - 1);
        dword_ptr(IN_BASES[k] + (off - k as i64 * IN_SPAN - IN_BIAS))
    };
    let row_w = (kw * lanes * nr * 64) as i64; // weight bytes of one kernel row

    a.add(rdi, IN_BIAS as i32)?;
    a.add(rsi, W_BIAS as i32)?;
    let mut loops = Vec::new();
    if kc > 1 {
        a.mov(r9, kc as i64)?;
    }
    let c_loop = a.instructions().len();
    if kh > 1 {
        a.mov(r10, kh as i64)?;
    }
    let ky_loop = a.instructions().len();
    // One kernel row: kx and l unrolled.
    for (k, &base) in IN_BASES.iter().enumerate().take(n_bases).skip(1) {
        a.lea(base, qword_ptr(rdi + k as i64 * IN_SPAN))?;
    }
    // A 1x1 tile reads each input block's `m` pixels once, a plane away from the previous
    // block's: the hardware prefetchers, which follow a page, do not see it coming, so
    // the next block's lines are asked for one block (16 reduction steps) ahead.
    if kh == 1 && kw == 1 && kc > 1 {
        for i in 0..m {
            a.prefetcht0(byte_ptr(rdi + (spec.in_plane - IN_BIAS + (i * sw) as i64 * px)))?;
        }
    }
    let mut w_at = W_BIAS; // where rsi points, relative to this kernel row's weights
    for kx in 0..kw {
        for l in 0..lanes {
            let step = ((kx * lanes + l) * nr * 64) as i64;
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
                            a.vfmadd231ps(acc(i, j), wreg(j), in_addr(off))?;
                        }
                    }
                    Broadcast::Register => {
                        a.vbroadcastss(areg, in_addr_plain(off))?;
                        for j in 0..nr {
                            if j < nw {
                                a.vfmadd231ps(acc(i, j), wreg(j), areg)?;
                            } else {
                                a.vfmadd231ps(acc(i, j), areg, w_mem(j))?;
                            }
                        }
                    }
                }
            }
        }
    }
    a.add(rsi, (row_w + W_BIAS - w_at) as i32)?;
    close_loops(&mut a, spec, ky_loop, c_loop, &mut loops)?;

    // Epilogue; the weight registers are free now.
    let t = wreg(0);
    if spec.last {
        if let Some(bits) = spec.residual {
            a.mov(eax, bits)?;
            a.vpbroadcastd(t, eax)?;
            for i in 0..m {
                for j in 0..nr {
                    // acc = s*acc + res
                    a.vfmadd213ps(acc(i, j), t, zmmword_ptr(r8 + out_off(i, j)))?;
                }
            }
        }
        if spec.relu {
            a.vpxord(t, t, t)?;
            for i in 0..m {
                for j in 0..nr {
                    a.vmaxps(acc(i, j), acc(i, j), t)?;
                }
            }
        }
    }
    for i in 0..m {
        for j in 0..nr {
            a.vmovups(zmmword_ptr(rdx + out_off(i, j)), acc(i, j))?;
        }
    }
    a.vzeroupper()?;
    a.ret()?;
    Ok(Emitted { code: a.take_instructions(), loops })
}

/// Ends the loops over kernel rows (counter `r10`, first instruction `ky_loop`) and input
/// blocks (`r9`, `c_loop`) of a tile, stepping the input pointer `rdi`.
fn close_loops(
    a: &mut CodeAssembler,
    spec: &TileSpec,
    ky_loop: usize,
    c_loop: usize,
    loops: &mut Vec<(usize, usize)>,
) -> std::result::Result<(), IcedError> {
    let &TileSpec { kc, kh, in_row, in_plane, .. } = spec;
    if kh > 1 {
        a.add(rdi, in_row as i32)?;
        a.sub(r10, 1)?;
        loops.push((a.instructions().len(), ky_loop));
        a.jnz(0u64)?;
    }
    if kc > 1 {
        let back = if kh > 1 { kh as i64 * in_row } else { 0 };
        a.add(rdi, (in_plane - back) as i32)?;
        a.sub(r9, 1)?;
        loops.push((a.instructions().len(), c_loop));
        a.jnz(0u64)?;
    }
    Ok(())
}

/// The ymm registers by number.
pub(super) const Y: [AsmRegisterYmm; 16] =
    [ymm0, ymm1, ymm2, ymm3, ymm4, ymm5, ymm6, ymm7, ymm8, ymm9, ymm10, ymm11, ymm12, ymm13, ymm14, ymm15];
/// The xmm registers by number.
pub(super) const X: [AsmRegisterXmm; 16] =
    [xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6, xmm7, xmm8, xmm9, xmm10, xmm11, xmm12, xmm13, xmm14, xmm15];

/// VEX has no compressed displacement: one byte reaches [-128, 127]. The input pointer is
/// biased by +128 and the extra bases are 256 bytes apart; the weight pointer is biased
/// by +128 and moved, when a vector falls out of reach, to 128 past the current lane's.
const IN_BIAS2: i64 = 128;
const IN_SPAN2: i64 = 256;
const W_BIAS2: i64 = 128;

/// The AVX2 tile: the same contract with 8-float halves. Output block `j` of pixel `i` is
/// held in `ymm[2*(i*nr + j)]` and the next register; the broadcast takes the register
/// after the accumulators and the weight halves of one lane (`[l][j][16]`, 32 bytes
/// apart) as many of the rest as there are; the FMAs of the others read them from memory.
fn emit_avx2(spec: &TileSpec) -> std::result::Result<Emitted, IcedError> {
    let &TileSpec { m, nr, kc, lanes, kh, kw, sw, out_plane, .. } = spec;
    let px = (lanes * 4) as i64; // bytes per input pixel
    let halves = 2 * nr; // ymm per pixel
    let acc = |i: usize, h: usize| Y[i * halves + h];
    let n_acc = m * halves; // <= 14: validated
    let areg = Y[n_acc];
    let nw = halves.min(15 - n_acc);
    let wreg = |h: usize| Y[n_acc + 1 + h];
    let out_off = |i: usize, h: usize| (h / 2) as i64 * out_plane + i as i64 * 64 + (h % 2) as i64 * 32;

    let mut a = CodeAssembler::new(64)?;
    a.set_prefer_vex(true);

    for i in 0..m {
        for h in 0..halves {
            if spec.first {
                a.vmovups(acc(i, h), ymmword_ptr(rcx + h as i64 * 32))?;
            } else {
                a.vmovups(acc(i, h), ymmword_ptr(rdx + out_off(i, h)))?;
            }
        }
    }

    let max_in = ((m - 1) * sw + kw - 1) as i64 * px + (lanes as i64 - 1) * 4;
    let n_bases = ((max_in / IN_SPAN2) as usize + 1).min(IN_BASES.len());
    let in_addr = |off: i64| {
        let k = ((off / IN_SPAN2) as usize).min(n_bases - 1);
        dword_ptr(IN_BASES[k] + (off - k as i64 * IN_SPAN2 - IN_BIAS2))
    };
    let row_w = (kw * lanes * nr * 64) as i64;

    a.add(rdi, IN_BIAS2 as i32)?;
    a.add(rsi, W_BIAS2 as i32)?;
    let mut loops = Vec::new();
    if kc > 1 {
        a.mov(r9, kc as i64)?;
    }
    let c_loop = a.instructions().len();
    if kh > 1 {
        a.mov(r10, kh as i64)?;
    }
    let ky_loop = a.instructions().len();
    for (k, &base) in IN_BASES.iter().enumerate().take(n_bases).skip(1) {
        a.lea(base, qword_ptr(rdi + k as i64 * IN_SPAN2))?;
    }
    let mut w_at = W_BIAS2; // where rsi points, relative to this kernel row's weights
    for kx in 0..kw {
        for l in 0..lanes {
            let step = ((kx * lanes + l) * nr * 64) as i64;
            if step + (halves as i64 - 1) * 32 - w_at > 127 {
                a.add(rsi, (step + W_BIAS2 - w_at) as i32)?;
                w_at = step + W_BIAS2;
            }
            let w_mem = |h: usize| ymmword_ptr(rsi + (step + h as i64 * 32 - w_at));
            for h in 0..nw {
                a.vmovups(wreg(h), w_mem(h))?;
            }
            for i in 0..m {
                a.vbroadcastss(areg, in_addr((i * sw + kx) as i64 * px + (l * 4) as i64))?;
                for h in 0..halves {
                    if h < nw {
                        a.vfmadd231ps(acc(i, h), wreg(h), areg)?;
                    } else {
                        a.vfmadd231ps(acc(i, h), areg, w_mem(h))?;
                    }
                }
            }
        }
    }
    a.add(rsi, (row_w + W_BIAS2 - w_at) as i32)?;
    close_loops(&mut a, spec, ky_loop, c_loop, &mut loops)?;

    // Epilogue: the broadcast register is free now.
    let (t, tx) = (areg, X[n_acc]);
    if spec.last {
        if let Some(bits) = spec.residual {
            a.mov(eax, bits)?;
            a.vmovd(tx, eax)?;
            a.vbroadcastss(t, tx)?;
            for i in 0..m {
                for h in 0..halves {
                    a.vfmadd213ps(acc(i, h), t, ymmword_ptr(r8 + out_off(i, h)))?;
                }
            }
        }
        if spec.relu {
            a.vxorps(t, t, t)?;
            for i in 0..m {
                for h in 0..halves {
                    a.vmaxps(acc(i, h), acc(i, h), t)?;
                }
            }
        }
    }
    for i in 0..m {
        for h in 0..halves {
            a.vmovups(ymmword_ptr(rdx + out_off(i, h)), acc(i, h))?;
        }
    }
    a.vzeroupper()?;
    a.ret()?;
    Ok(Emitted { code: a.take_instructions(), loops })
}

/// Encodes `t` for address `rip` into `enc`'s buffer, one pass: the only branches are
/// loop back-edges, whose targets are already placed when they are reached.
fn encode(enc: &mut Encoder, t: &Emitted, mut rip: u64) -> std::result::Result<(), IcedError> {
    let mut ips = Vec::with_capacity(t.code.len());
    for (k, ins) in t.code.iter().enumerate() {
        ips.push(rip);
        let branch;
        let ins = match t.loops.iter().find(|l| l.0 == k) {
            Some(&(_, top)) => {
                let target = ips[top];
                let short = target.wrapping_sub(rip + 2) as i64 >= -128;
                branch = Instruction::with_branch(if short { Code::Jne_rel8_64 } else { Code::Jne_rel32_64 }, target)?;
                &branch
            }
            None => ins,
        };
        rip += enc.encode(ins, rip)? as u64;
    }
    Ok(())
}

fn iced(e: IcedError) -> Error {
    Error::Jit(format!("wide tier assembler: {e}"))
}

/// Any code the wide tiers emit behind a [`TileFn`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum WideTile {
    /// A convolution micro-tile.
    Conv(TileSpec),
    /// A linear transform (Winograd), see [`super::wide_transform`].
    Transform(TransformSpec),
}

/// Collects tiles of one ISA for one executable region. Equal specs share one tile.
pub struct WideKernels {
    isa: Isa,
    tiles: Vec<(WideTile, Broadcast)>,
    index: HashMap<(WideTile, Broadcast), usize>,
}

impl WideKernels {
    /// An empty set of `isa` tiles.
    pub fn new(isa: Isa) -> Self {
        WideKernels { isa, tiles: Vec::new(), index: HashMap::new() }
    }

    /// The ISA of the tiles.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Adds a tile with the [preferred](Broadcast::preferred) broadcast; returns its index
    /// in the [`WideCode`].
    pub fn add(&mut self, spec: &TileSpec) -> Result<usize> {
        self.add_with(spec, Broadcast::preferred(spec))
    }

    /// Adds a tile with a chosen broadcast (for measurements; AVX2 has one kind); returns
    /// its index.
    pub fn add_with(&mut self, spec: &TileSpec, broadcast: Broadcast) -> Result<usize> {
        spec.validate(self.isa)?;
        self.insert((WideTile::Conv(spec.clone()), spec.broadcast(self.isa, broadcast)))
    }

    /// Adds any tile (a convolution with its preferred broadcast); returns its index.
    pub fn add_tile(&mut self, tile: &WideTile) -> Result<usize> {
        match tile {
            WideTile::Conv(s) => self.add(s),
            WideTile::Transform(t) => {
                t.validate(self.isa)?;
                self.insert((tile.clone(), Broadcast::Embedded))
            }
        }
    }

    fn insert(&mut self, key: (WideTile, Broadcast)) -> Result<usize> {
        if let Some(&i) = self.index.get(&key) {
            return Ok(i);
        }
        self.tiles.push(key.clone());
        self.index.insert(key, self.tiles.len() - 1);
        Ok(self.tiles.len() - 1)
    }

    /// Distinct tiles so far.
    pub fn len(&self) -> usize {
        self.tiles.len()
    }

    /// Whether no tile was added.
    pub fn is_empty(&self) -> bool {
        self.tiles.is_empty()
    }

    /// Emits every tile, assembles each at its final address in one mapping and makes it
    /// executable. Fails when this machine cannot run the code ([`available`]).
    pub fn finish(self) -> Result<WideCode> {
        if !self.isa.available() {
            return Err(Error::Jit(format!("{:?} tiles need x86-64 with {} (System V)", self.isa, self.isa.needs())));
        }
        let tiles = self
            .tiles
            .iter()
            .map(|(t, b)| match t {
                WideTile::Conv(s) => emit(s, self.isa, *b),
                WideTile::Transform(s) => s.emit(self.isa),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(iced)?;
        // Map first (at most 15 bytes an instruction, tiles start on cache lines), then
        // encode at the final addresses.
        let cap: usize = tiles.iter().map(|t| t.code.len() * 15 + 63).sum::<usize>().max(64);
        let mut map = MmapMut::map_anon(cap).map_err(|e| Error::Jit(format!("mapping wide code: {e}")))?;
        let base = map.as_ptr() as u64;
        let mut enc = Encoder::new(64);
        let mut offsets = Vec::with_capacity(tiles.len());
        for t in &tiles {
            let mut buf = enc.take_buffer();
            buf.resize(buf.len().next_multiple_of(64), 0xCC); // int3 between tiles
            offsets.push(buf.len());
            enc.set_buffer(buf);
            encode(&mut enc, t, base + *offsets.last().unwrap() as u64).map_err(iced)?;
        }
        let bytes = enc.take_buffer();
        map[..bytes.len()].copy_from_slice(&bytes);
        map[bytes.len()..].fill(0xCC);
        let at = bytes.len();
        let map = map.make_exec().map_err(|e| Error::Jit(format!("making wide code executable: {e}")))?;
        Ok(WideCode { map, offsets, len: at })
    }
}

/// Tiles in one read-execute mapping.
pub struct WideCode {
    map: Mmap,
    offsets: Vec<usize>,
    len: usize,
}

impl WideCode {
    /// The entry point of tile `idx` (an index [`WideKernels::add`] returned).
    ///
    /// # Panics
    /// When `idx` is not such an index.
    pub fn tile(&self, idx: usize) -> TileFn {
        let p = self.map[self.offsets[idx]..].as_ptr();
        // SAFETY: `p` is the first byte of a complete function assembled for this address,
        // following TileFn's ABI (System V, checked by `available`); the mapping is
        // read-execute and lives as long as `self`, which the TileFn contract requires.
        unsafe { std::mem::transmute::<*const u8, TileFn>(p) }
    }

    /// Number of tiles.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Whether there are no tiles.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Bytes of code, alignment padding included.
    pub fn code_bytes(&self) -> usize {
        self.len
    }
}

impl std::fmt::Debug for WideCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WideCode").field("tiles", &self.offsets.len()).field("code_bytes", &self.len).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(m: usize, nr: usize, kw: usize, lanes: usize, first: bool, last: bool) -> TileSpec {
        TileSpec {
            m,
            nr,
            kc: 3,
            lanes,
            kh: 3,
            kw,
            sw: 2,
            in_row: 4096,
            in_plane: -40000,
            out_plane: 1 << 20,
            first,
            last,
            residual: Some(0.5f32.to_bits()),
            relu: true,
        }
    }

    /// AVX2 tiles must run on CPUs without AVX-512: no EVEX encoding anywhere (which would
    /// also be the only way to name ymm16-31 or a mask), whatever the shape and epilogue.
    #[test]
    fn avx2_tiles_are_vex_only() {
        for (m, nr) in [(7, 1), (6, 1), (3, 2), (2, 3), (1, 4), (1, 1)] {
            for (kw, lanes) in [(1, 16), (7, 16), (3, 3)] {
                for (first, last) in [(true, true), (false, false)] {
                    let s = spec(m, nr, kw, lanes, first, last);
                    s.validate(Isa::Avx2).unwrap();
                    let t = emit(&s, Isa::Avx2, Broadcast::Embedded).unwrap();
                    for ins in &t.code {
                        let code = format!("{:?}", ins.code());
                        assert!(!code.starts_with("EVEX_"), "{s:?}: {code}");
                    }
                    let fmas =
                        t.code.iter().filter(|i| format!("{:?}", i.code()).starts_with("VEX_Vfmadd231ps")).count();
                    assert_eq!(fmas, 2 * m * nr * kw * lanes, "{s:?}");
                }
            }
        }
    }
}
