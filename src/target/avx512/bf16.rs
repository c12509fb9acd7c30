//! The AVX-512 tiles' multiply-add by element type: `vfmadd231ps` for f32, and for bf16
//! (AVX512_BF16) `vdpbf16ps`, which adds the products of a pair of bf16 lanes to each f32
//! accumulator lane:
//!
//! ```text
//!     acc[o] += w[o][1] * x[1] + w[o][0] * x[0]      (o < 16; each product exact in f32)
//! ```
//!
//! so one bf16 step takes two input lanes, with the same registers, loads and loops as an
//! f32 step of one: the tile does half the instructions for the same reduction (Zen 4 runs
//! either at one per cycle, `examples/isa_peak.rs`: 117 against 234 GFLOP/s a core).
//! Nothing else of the tile depends on the element type: the input pair is one 32-bit word,
//! broadcast like a float.

use crate::cpu::Cpu;
use crate::target::tile::Dtype;
use crate::target::x86::Emitted;
use iced_x86::IcedError;
use iced_x86::code_asm::*;

/// Whether the AVX-512 tiles come in `dtype`.
pub(super) fn emits(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F32 | Dtype::Bf16)
}

/// Whether `cpu` runs AVX-512 tiles of `dtype`, or what it lacks.
pub(super) fn runs(dtype: Dtype, cpu: &Cpu) -> Result<(), &'static str> {
    match dtype {
        Dtype::F32 if cpu.avx512f => Ok(()),
        Dtype::Bf16 if cpu.avx512f && cpu.avx512_bf16 => Ok(()),
        Dtype::F32 => Err("AVX-512F"),
        Dtype::Bf16 => Err("AVX-512F and AVX512_BF16 (vdpbf16ps)"),
    }
}

/// The multiply-add of one reduction step.
#[derive(Clone, Copy)]
pub(super) enum MulAdd {
    /// `vfmadd231ps acc, w, x`.
    Fma,
    /// `vdpbf16ps acc, w, x`.
    DotBf16,
}

impl MulAdd {
    pub(super) fn of(dtype: Dtype) -> MulAdd {
        match dtype {
            Dtype::F32 => MulAdd::Fma,
            Dtype::Bf16 => MulAdd::DotBf16,
        }
    }

    /// `acc += w * broadcast [x]`.
    pub(super) fn bcst(
        self,
        a: &mut CodeAssembler,
        acc: AsmRegisterZmm,
        w: AsmRegisterZmm,
        x: AsmMemoryOperand,
    ) -> Result<(), IcedError> {
        match self {
            MulAdd::Fma => a.vfmadd231ps(acc, w, x),
            MulAdd::DotBf16 => a.vdpbf16ps(acc, w, x),
        }
    }

    /// `acc += w * x`, both in registers.
    pub(super) fn reg(
        self,
        a: &mut CodeAssembler,
        acc: AsmRegisterZmm,
        w: AsmRegisterZmm,
        x: AsmRegisterZmm,
    ) -> Result<(), IcedError> {
        match self {
            MulAdd::Fma => a.vfmadd231ps(acc, w, x),
            MulAdd::DotBf16 => a.vdpbf16ps(acc, w, x),
        }
    }

    /// `acc += x * [w]` (a weight vector read from memory).
    pub(super) fn mem(
        self,
        a: &mut CodeAssembler,
        acc: AsmRegisterZmm,
        x: AsmRegisterZmm,
        w: AsmMemoryOperand,
    ) -> Result<(), IcedError> {
        match self {
            MulAdd::Fma => a.vfmadd231ps(acc, x, w),
            MulAdd::DotBf16 => a.vdpbf16ps(acc, x, w),
        }
    }
}

/// The conversion tile: `pixels` pixels of 16 floats at `rdi` to bf16 at `rdx` (the
/// [`crate::target::tile::TileFn`] arguments `inp` and `out`), two pixels per
/// `vcvtne2ps2bf16` (round to nearest even; denormals to zero; NaN quiet), the odd one by
/// `vcvtneps2bf16`.
pub(crate) fn emit_to_bf16(pixels: usize) -> Result<Emitted, IcedError> {
    let mut a = CodeAssembler::new(64)?;
    let mut loops = Vec::new();
    let pairs = pixels / 2;
    if pairs > 0 {
        a.mov(r9, pairs as i64)?;
        let top = a.instructions().len();
        a.vmovups(zmm0, zmmword_ptr(rdi))?;
        a.vmovups(zmm1, zmmword_ptr(rdi + 64))?;
        a.vcvtne2ps2bf16(zmm2, zmm1, zmm0)?;
        a.vmovups(zmmword_ptr(rdx), zmm2)?;
        a.add(rdi, 128)?;
        a.add(rdx, 64)?;
        a.sub(r9, 1)?;
        loops.push((a.instructions().len(), top));
        a.jnz(0u64)?;
    }
    if pixels % 2 == 1 {
        a.vmovups(zmm0, zmmword_ptr(rdi))?;
        a.vcvtneps2bf16(ymm2, zmm0)?;
        a.vmovups(ymmword_ptr(rdx), ymm2)?;
    }
    a.vzeroupper()?;
    a.ret()?;
    Ok(Emitted { code: a.take_instructions(), loops })
}
