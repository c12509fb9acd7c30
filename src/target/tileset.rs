//! The executable region of one ISA's tiles: a [`TileSet`] collects [`Tile`]s (convolution
//! micro-tiles and Winograd transforms), and [`TileSet::finish`] emits them with the ISA's
//! [`super::isa`] implementation into one [`TileCode`].
//!
//! The region is mapped read-write, every tile encoded at its final address, then remapped
//! read-execute once (never writable and executable at once). The code assembler only
//! builds the instruction lists; they are encoded in one pass with iced's `Encoder` (4x
//! faster than its block encoder), which is possible because the only branches are loop
//! back-edges.
//!
//! Emission is portable Rust; running is not: on other targets, and on x86-64 without the
//! ISA, [`Isa::available`] is false and [`TileSet::finish`] returns an error.

use super::isa::Isa;
use super::tile::{Broadcast, Dtype, TileFn, TileSpec};
use super::x86::Emitted;
use super::x86::transform::TransformSpec;
use crate::error::{Error, Result};
use iced_x86::{Code, Encoder, IcedError, Instruction};
use memmap2::{Mmap, MmapMut};
use std::collections::HashMap;

/// Any code the x86 tiers emit behind a [`TileFn`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Tile {
    /// A convolution micro-tile.
    Conv(TileSpec),
    /// `pixels` pixels of one f32 channel block to bf16 (AVX-512 with AVX512_BF16 only;
    /// [`crate::target::codegen::bf16`]).
    ToBf16 {
        /// Pixels of 16 floats.
        pixels: usize,
    },
    /// A linear transform (Winograd), see [`super::x86::transform`].
    Transform(TransformSpec),
}

/// Encodes `t` for address `rip` into `enc`'s buffer, one pass: the only branches are
/// loop back-edges, whose targets are already placed when they are reached.
fn encode(enc: &mut Encoder, t: &Emitted, mut rip: u64) -> Result<(), IcedError> {
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

fn iced(isa: Isa) -> impl Fn(IcedError) -> Error {
    move |e| Error::Jit(format!("{} tile assembler: {e}", isa.name()))
}

/// Collects tiles of one ISA for one executable region. Equal specs share one tile.
pub struct TileSet {
    isa: Isa,
    tiles: Vec<(Tile, Broadcast)>,
    index: HashMap<(Tile, Broadcast), usize>,
}

impl TileSet {
    /// An empty set of `isa` tiles.
    pub fn new(isa: Isa) -> Self {
        TileSet { isa, tiles: Vec::new(), index: HashMap::new() }
    }

    /// The ISA of the tiles.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Adds a tile with the [preferred](Broadcast::preferred) broadcast; returns its index
    /// in the [`TileCode`].
    pub fn add(&mut self, spec: &TileSpec) -> Result<usize> {
        self.add_with(spec, Broadcast::preferred(spec))
    }

    /// Adds a tile with a chosen broadcast (for measurements; AVX2 has one kind); returns
    /// its index.
    pub fn add_with(&mut self, spec: &TileSpec, broadcast: Broadcast) -> Result<usize> {
        spec.validate(self.isa)?;
        self.insert((Tile::Conv(spec.clone()), spec.broadcast(self.isa, broadcast)))
    }

    /// Adds any tile (a convolution with its preferred broadcast); returns its index.
    pub fn add_tile(&mut self, tile: &Tile) -> Result<usize> {
        match tile {
            Tile::Conv(s) => self.add(s),
            Tile::ToBf16 { .. } if self.isa != Isa::Avx512 => {
                Err(Error::Invalid(format!("{:?} has no bf16 conversion tile", self.isa)))
            }
            Tile::ToBf16 { .. } => self.insert((tile.clone(), Broadcast::Embedded)),
            Tile::Transform(t) => {
                t.validate(self.isa)?;
                self.insert((tile.clone(), Broadcast::Embedded))
            }
        }
    }

    fn insert(&mut self, key: (Tile, Broadcast)) -> Result<usize> {
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
    /// executable. Fails when this machine cannot run the code ([`Isa::available`]).
    pub fn finish(self) -> Result<TileCode> {
        if !self.isa.available() {
            return Err(Error::Jit(format!(
                "{} tiles need x86-64 with {} (System V)",
                self.isa.name(),
                self.isa.needs()
            )));
        }
        for (t, _) in &self.tiles {
            let dtype = match t {
                Tile::Conv(s) => s.dtype,
                Tile::ToBf16 { .. } => Dtype::Bf16,
                Tile::Transform(_) => Dtype::F32,
            };
            if let Err(needs) = self.isa.runs(dtype) {
                return Err(Error::Jit(format!("{:?} {:?} tiles need a CPU with {needs}", self.isa, dtype)));
            }
        }
        let tiles = self
            .tiles
            .iter()
            .map(|(t, b)| match t {
                Tile::Conv(s) => self.isa.tiles().emit_conv(s, *b),
                Tile::ToBf16 { pixels } => super::avx512::bf16::emit_to_bf16(*pixels),
                Tile::Transform(s) => s.emit(self.isa),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(iced(self.isa))?;
        // Map first (at most 15 bytes an instruction, tiles start on cache lines), then
        // encode at the final addresses.
        let cap: usize = tiles.iter().map(|t| t.code.len() * 15 + 63).sum::<usize>().max(64);
        let mut map =
            MmapMut::map_anon(cap).map_err(|e| Error::Jit(format!("mapping {} tile code: {e}", self.isa.name())))?;
        let base = map.as_ptr() as u64;
        let mut enc = Encoder::new(64);
        let mut offsets = Vec::with_capacity(tiles.len());
        for t in &tiles {
            let mut buf = enc.take_buffer();
            buf.resize(buf.len().next_multiple_of(64), 0xCC); // int3 between tiles
            offsets.push(buf.len());
            enc.set_buffer(buf);
            encode(&mut enc, t, base + *offsets.last().unwrap() as u64).map_err(iced(self.isa))?;
        }
        let bytes = enc.take_buffer();
        map[..bytes.len()].copy_from_slice(&bytes);
        map[bytes.len()..].fill(0xCC);
        let at = bytes.len();
        let map =
            map.make_exec().map_err(|e| Error::Jit(format!("making {} tile code executable: {e}", self.isa.name())))?;
        Ok(TileCode { map, offsets, len: at })
    }
}

/// Tiles in one read-execute mapping.
pub struct TileCode {
    map: Mmap,
    offsets: Vec<usize>,
    len: usize,
}

impl TileCode {
    /// The entry point of tile `idx` (an index [`TileSet::add`] returned).
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

impl std::fmt::Debug for TileCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TileCode").field("tiles", &self.offsets.len()).field("code_bytes", &self.len).finish()
    }
}
