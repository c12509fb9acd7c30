//! What the x86 ISAs share: the [`Isa`] names, the [`TileIsa`] contract each ISA folder
//! implements (its register blocking and the code of its tiles), register names and the
//! tiles' loop machinery. The registry of implementations is [`super::isa`]; the executable
//! region the tiles live in is [`super::tileset`].

pub(crate) mod frame;
pub mod transform;

use super::tile::{Broadcast, Dtype, TileSpec};
use crate::cpu::Cpu;
use iced_x86::code_asm::*;
use iced_x86::{IcedError, Instruction};

/// The instruction set a tile is emitted for; one per [`super::tileset::TileSet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// AVX-512F: 32 zmm registers of 16 floats, one per output block.
    Avx512,
    /// AVX2 and FMA (VEX encoded): 16 ymm registers of 8 floats, two per output block.
    Avx2,
}

/// What an ISA implements: the register blocking of its tiles and their code. Every method
/// is about one tile of [`TileSpec`]'s contract; `tests/tiles.rs` runs one contract suite
/// against each implementation the CPU has.
pub trait TileIsa: Sync {
    /// What the CPU needs, for messages (`"AVX-512F"`).
    fn needs(&self) -> &'static str;
    /// Whether `cpu` runs this ISA's tiles.
    fn available(&self, cpu: &Cpu) -> bool;
    /// Whether this ISA emits tiles of `dtype` (f32: every ISA).
    fn emits(&self, dtype: Dtype) -> bool {
        dtype == Dtype::F32
    }
    /// Whether `cpu` runs this ISA's `dtype` tiles: `Err` with what it lacks, for messages.
    fn runs(&self, dtype: Dtype, cpu: &Cpu) -> Result<(), &'static str> {
        if dtype == Dtype::F32 && self.available(cpu) { Ok(()) } else { Err(self.needs()) }
    }
    /// Whether an `m x nr` tile fits the registers: `Ok` with the instructions one input lane
    /// of one tap takes (weight loads included), or why not.
    fn blocking(&self, m: usize, nr: usize) -> Result<usize, String>;
    /// The largest `m` of an `nr`-block tile.
    fn max_m(&self, nr: usize) -> usize;
    /// Estimated cycles of one reduction step (one input lane of one tap) of an `m x nr`
    /// tile, for `tiled_conv::choose_tile`.
    fn step_cycles(&self, m: usize, nr: usize) -> f64;
    /// Registers one output block of one pixel takes (its epilogue stores one each).
    fn regs_per_block(&self) -> usize;
    /// The broadcast `b` becomes for `spec` on this ISA (what the registers allow).
    fn broadcast(&self, spec: &TileSpec, b: Broadcast) -> Broadcast;
    /// The instructions of the convolution tile `spec` (validated for this ISA).
    fn emit_conv(&self, spec: &TileSpec, b: Broadcast) -> Result<Emitted, IcedError>;
}

/// The zmm registers by number.
pub(crate) const Z: [AsmRegisterZmm; 32] = [
    zmm0, zmm1, zmm2, zmm3, zmm4, zmm5, zmm6, zmm7, zmm8, zmm9, zmm10, zmm11, zmm12, zmm13, zmm14, zmm15, zmm16, zmm17,
    zmm18, zmm19, zmm20, zmm21, zmm22, zmm23, zmm24, zmm25, zmm26, zmm27, zmm28, zmm29, zmm30, zmm31,
];

/// Input base registers: `rdi` (the biased row pointer), then `rax r11 rcx` at +1024 each.
/// `rcx` (bias) is dead once the accumulators are loaded.
pub(crate) const IN_BASES: [AsmRegister64; 4] = [rdi, rax, r11, rcx];

/// The instructions of one tile. `loops` holds the backward branches as
/// `(index of a placeholder jnz, index of the loop's first instruction)`; [`super::tileset::TileSet::finish`] fills
/// in their addresses.
pub struct Emitted {
    pub(crate) code: Vec<Instruction>,
    pub(crate) loops: Vec<(usize, usize)>,
}

/// The ymm registers by number.
pub(crate) const Y: [AsmRegisterYmm; 16] =
    [ymm0, ymm1, ymm2, ymm3, ymm4, ymm5, ymm6, ymm7, ymm8, ymm9, ymm10, ymm11, ymm12, ymm13, ymm14, ymm15];
/// The xmm registers by number.
pub(crate) const X: [AsmRegisterXmm; 16] =
    [xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6, xmm7, xmm8, xmm9, xmm10, xmm11, xmm12, xmm13, xmm14, xmm15];
