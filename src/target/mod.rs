//! The target: everything that depends on the machine the network runs on. The semantic
//! graph comes in, optimised; out come kernels, tiles, packed weights and a plan.
//!
//! Its modules, each using only those above it (`tests/layering.rs` checks there is no cycle):
//!
//! - [`mem`], [`params`]: aligned memory; the packed parameters that live in it.
//! - [`clif`]: small Cranelift building blocks (loops, loads, constants, [`clif::BLOCK`]).
//! - [`tile`]: the micro-tile contract ([`tile::TileSpec`]).
//! - [`x86`]: what the x86 ISAs share: the [`x86::Isa`] names, the [`x86::TileIsa`] trait,
//!   registers, loops, the Winograd transform tiles.
//! - [`avx512`], [`avx2`]: one folder per ISA, each implementing [`x86::TileIsa`].
//! - [`isa`]: the registry ([`x86::Isa::tiles`]) and whether the CPU runs each one.
//! - [`tileset`]: the executable region one ISA's tiles are emitted into.
//! - [`tier`]: which of them a compilation uses; [`portable`]: Cranelift's f32x4 kernels.
//! - [`tiled_conv`], [`winograd`]: convolutions built from tiles (direct, and by Winograd
//!   transforms).
//! - [`codegen`]: every kernel's CLIF ([`codegen::kernel::KernelSpec`]).
//! - [`pack`]: the weights packed to their folded place.
//! - [`select`]: the target's passes (layout and Winograd selection), after the semantic ones.
//! - [`plan`]: the graph lowered to kernel calls over one arena ([`plan::Plan`]).
//!
//! What the CPU has comes from one probe, [`crate::cpu::Cpu::host`].

pub mod avx2;
pub mod avx512;
pub mod clif;
pub mod codegen;
pub mod isa;
pub mod mem;
pub mod pack;
pub mod params;
pub mod plan;
pub mod portable;
pub mod select;
pub mod tier;
pub mod tile;
pub mod tiled_conv;
pub mod tileset;
pub mod winograd;
pub mod x86;

pub use select::{optimize, pass_names};
pub use tier::{Tier, TierChoice};
