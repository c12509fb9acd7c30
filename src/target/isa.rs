//! The instruction sets the target emits tiles for, and the contract each one implements.
//!
//! An ISA is a folder (`avx512/`, `avx2/`) holding one [`TileIsa`]: its register blocking
//! (which `m x nr` tiles fit its registers, and what one costs), and the emitter of the
//! convolution tile of [`crate::target::tile`]. [`Isa`] names them and hands out each one's
//! implementation ([`Isa::tiles`]); whether the CPU runs it comes from the one CPU probe,
//! [`crate::cpu::Cpu::host`]. Adding an ISA is a folder, a variant and its line in
//! [`Isa::tiles`].

use super::tile::{Broadcast, TileSpec};
use super::x86::Emitted;
use crate::cpu::Cpu;
use iced_x86::IcedError;

/// The instruction set a tile is emitted for; one per [`super::x86::TileSet`].
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
    /// Whether an `m x nr` tile fits the registers: `Ok` with the instructions one input lane
    /// of one tap takes (weight loads included), or why not.
    fn blocking(&self, m: usize, nr: usize) -> Result<usize, String>;
    /// The largest `m` of an `nr`-block tile.
    fn max_m(&self, nr: usize) -> usize;
    /// Estimated cycles of one reduction step (one input lane of one tap) of an `m x nr`
    /// tile, for [`super::tiled_conv::choose_tile`].
    fn step_cycles(&self, m: usize, nr: usize) -> f64;
    /// Registers one output block of one pixel takes (its epilogue stores one each).
    fn regs_per_block(&self) -> usize;
    /// The broadcast `b` becomes for `spec` on this ISA (what the registers allow).
    fn broadcast(&self, spec: &TileSpec, b: Broadcast) -> Broadcast;
    /// The instructions of the convolution tile `spec` (validated for this ISA).
    fn emit_conv(&self, spec: &TileSpec, b: Broadcast) -> Result<Emitted, IcedError>;
}

impl Isa {
    /// All of them, widest first.
    pub const ALL: [Isa; 2] = [Isa::Avx512, Isa::Avx2];

    /// This ISA's implementation of the tile contract.
    pub fn tiles(self) -> &'static dyn TileIsa {
        match self {
            Isa::Avx512 => &super::avx512::Avx512,
            Isa::Avx2 => &super::avx2::Avx2,
        }
    }

    /// Whether this machine runs tiles of this ISA (the CPU has it, and the System V calling
    /// convention the tiles follow).
    pub fn available(self) -> bool {
        let cpu = Cpu::host();
        cfg!(target_arch = "x86_64") && cpu.sysv && self.tiles().available(cpu)
    }

    /// The widest ISA this machine runs, if any.
    pub fn best() -> Option<Isa> {
        Isa::ALL.into_iter().find(|i| i.available())
    }

    /// What the CPU needs, for messages.
    pub fn needs(self) -> &'static str {
        self.tiles().needs()
    }
}
