//! The registry of the ISAs the target emits tiles for: each [`Isa`] hands out its folder's
//! implementation of the tile contract ([`Isa::tiles`], a [`TileIsa`]); whether the CPU runs
//! it comes from the one CPU probe, [`crate::cpu::Cpu::host`]. Adding an ISA is a folder
//! (`avx512/`, `avx2/`), a variant of [`Isa`] and its line in [`Isa::tiles`].

use super::tile::{Broadcast, Dtype, TileSpec};
pub use super::x86::{Isa, TileIsa};
use crate::cpu::Cpu;
use crate::error::{Error, Result};

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

    /// Whether this machine runs tiles of this ISA with `dtype` input and weights: `Err`
    /// with what the CPU lacks (`"AVX-512F and AVX512_BF16"`).
    pub fn runs(self, dtype: Dtype) -> std::result::Result<(), &'static str> {
        if !self.available() {
            return Err(self.needs());
        }
        self.tiles().runs(dtype, Cpu::host())
    }

    /// Its name in messages: `AVX-512`, `AVX2`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "AVX-512",
            Isa::Avx2 => "AVX2",
        }
    }

    /// What the CPU needs, for messages.
    pub fn needs(self) -> &'static str {
        self.tiles().needs()
    }
}

impl TileSpec {
    /// Checks the limits of the contract for `isa` (the registers: see [`TileSpec::nr`])
    /// and that every displacement and immediate the code needs fits in 32 bits.
    pub fn validate(&self, isa: Isa) -> Result<()> {
        if !isa.tiles().emits(self.dtype) {
            return Err(Error::Invalid(format!("tile {self:?}: {isa:?} has no {:?} tiles", self.dtype)));
        }
        self.check(isa.tiles().blocking(self.m, self.nr))
    }

    /// The broadcast `b` asks for on `isa`, if the registers allow it.
    pub fn broadcast(&self, isa: Isa, b: Broadcast) -> Broadcast {
        isa.tiles().broadcast(self, b)
    }
}
