//! The arithmetic a network is computed in: what `--precision` and `Compiler::precision`
//! choose, and what the reference interpreter simulates ([`crate::reference::run_bf16`]).
//!
//! **f32** (the default): every op in f32 (sums of products accumulated with f32 rounding by
//! the JIT, in f64 by the reference).
//!
//! **bf16**: every convolution and fully connected layer rounds its input activations and its
//! weights to bfloat16 (round to nearest, ties to even, denormals to zero; [`bf16`]),
//! multiplies them exactly
//! and sums the products in f32; bias, residual sum and ReLU are f32, as is every other op.
//! The weights rounded are those of the graph as compiled: after `fold-batch-norm` has
//! folded a batch norm into its convolution, the folded weights. Where activations are
//! stored in bf16 is the JIT's choice for speed (the input of each bf16 convolution, written
//! by a conversion step; a compact stem input is rounded in place and read by f32 tiles); it
//! rounds exactly where this says. Winograd convolutions are not used in bf16: every
//! convolution runs direct.

use std::fmt;

/// The arithmetic of convolutions and fully connected layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// f32 throughout.
    #[default]
    F32,
    /// bf16 products with f32 sums (see the module docs).
    Bf16,
}

impl Precision {
    /// The name (`f32`, `bf16`).
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `x` rounded to the nearest bfloat16 (ties to even), returned as the f32 of the same value:
/// what `vcvtneps2bf16` computes. NaN stays NaN (quiet); infinities stay infinite; a value
/// beyond the largest bf16 rounds to infinity; an f32 denormal (|x| < 2^-126) becomes a zero
/// of its sign, as the bf16 instructions treat denormals.
pub fn bf16(x: f32) -> f32 {
    f32::from_bits((bf16_bits(x) as u32) << 16)
}

/// The bits of `x` rounded to bfloat16, as [`bf16`] rounds.
pub fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16; // quiet, sign and payload top kept
    }
    if b & 0x7F80_0000 == 0 {
        return ((b >> 16) & 0x8000) as u16; // a denormal: zero
    }
    ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_nearest_even() {
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even (1.0).
        assert_eq!(bf16(1.0 + 1.0 / 256.0), 1.0);
        // 1 + 3*2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: to the even, 1 + 2^-6.
        assert_eq!(bf16(1.0 + 3.0 / 256.0), 1.0 + 1.0 / 64.0);
        // Just above the halfway point rounds up.
        assert_eq!(bf16(f32::from_bits((1.0f32 + 1.0 / 256.0).to_bits() + 1)), 1.0 + 1.0 / 128.0);
        assert_eq!(bf16(-2.5), -2.5);
        assert_eq!(bf16(f32::MAX), f32::INFINITY);
        assert_eq!(bf16(f32::INFINITY), f32::INFINITY);
        assert!(bf16(f32::NAN).is_nan());
        // Denormals become zeros of their sign.
        assert_eq!(bf16(f32::from_bits(0x0000_8001)).to_bits(), 0);
        assert_eq!(bf16(-f32::from_bits(0x007F_FFFF)).to_bits(), 0x8000_0000);
        assert_eq!(bf16(f32::MIN_POSITIVE), f32::MIN_POSITIVE);
        for x in [0.1f32, 2.71, -1e-20, 6.5e4, 1e30] {
            let r = bf16(x);
            assert_eq!(r.to_bits() & 0xFFFF, 0);
            assert!(((r - x) / x).abs() <= 1.0 / 256.0, "{x} -> {r}");
        }
    }
}
