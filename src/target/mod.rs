//! The target: everything that depends on the machine the network runs on. The semantic
//! graph comes in, optimised; out come kernels, tiles, packed weights and a plan.
//!
//! - [`select`]: the target's passes (layout and Winograd selection), after the semantic ones.
//! - [`plan`]: the graph lowered to kernel calls over one arena ([`plan::Plan`]).
//! - [`pack`], [`mem`]: the weights packed to their folded place; the memory they live in.
//! - [`codegen`]: Cranelift: every kernel's CLIF ([`codegen::kernel::KernelSpec`]).
//! - [`tile`]: the micro-tile contract; [`isa`]: the ISAs that implement it
//!   ([`avx512`], [`avx2`], with what they share in [`x86`]); [`portable`]: Cranelift's
//!   f32x4 tile; [`tier`]: which of them a compilation uses.
//! - [`tiled_conv`], [`winograd`]: convolutions built from tiles (direct, and by Winograd
//!   transforms).
//!
//! What the CPU has comes from one probe, [`crate::cpu::Cpu::host`].

pub mod avx2;
pub mod avx512;
pub mod codegen;
pub mod isa;
pub mod mem;
pub mod pack;
pub mod plan;
pub mod portable;
pub mod select;
pub mod tier;
pub mod tile;
pub mod tiled_conv;
pub mod winograd;
pub mod x86;

pub use select::{optimize, pass_names};
pub use tier::{Tier, TierChoice};
