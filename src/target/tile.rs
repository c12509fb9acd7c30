//! The tile contract: what one convolution micro-tile computes ([`TileSpec`]), how it is
//! called ([`TileFn`]) and the limits every ISA's tiles share. The ISA folders
//! ([`super::avx512`], [`super::avx2`]) implement it behind [`super::x86::TileIsa`]; the
//! Cranelift loops of [`super::tiled_conv`] call the tiles; `tests/tiles.rs` checks each ISA
//! the CPU has against a plain loop of this contract.
//!
//! ```text
//!     acc[i][j] = first ? bias[j] : out[j][i]
//!     for c < kc:                     counted loop
//!       for ky < kh:                  counted loop
//!         for kx < kw, l < lanes:     unrolled
//!           acc[i][j] += w[c][ky][kx][l][j] * inp[c][ky][i*sw + kx][l]
//!     out[j][i] = relu?(res[j][i] + s*acc[i][j])   when last, else acc[i][j]
//! ```

use crate::error::{Error, Result};

/// The element type of a tile's input and weights. Accumulation, bias, residual and output
/// are f32 whatever it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// 32-bit floats.
    #[default]
    F32,
    /// bfloat16 (the top half of an f32), read in pairs of lanes: the input's lanes `2p` and
    /// `2p+1` are one 32-bit word, and the weights are packed `[c][ky][kx][l/2][j][16][2]`, so
    /// one `vdpbf16ps` adds both lanes' products to each of 16 output channels.
    Bf16,
}

impl Dtype {
    /// Bytes of one element.
    pub const fn bytes(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::Bf16 => 2,
        }
    }

    /// Lanes one reduction step takes (one instruction per output block and pixel).
    pub const fn lanes_per_step(self) -> usize {
        match self {
            Dtype::F32 => 1,
            Dtype::Bf16 => 2,
        }
    }
}

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
/// so the weights of a tile are packed `[c][ky][kx][l][j][16]`. With [`Dtype::Bf16`] input and
/// weights are bfloat16 (element offsets are bytes / 2, the weights packed
/// `[c][ky][kx][l/2][j][16][2]`), every product is exact in f32, and the sums are f32; the
/// order of the additions is the ISA's. [`TileSpec::validate`] states the limits.
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
    /// are `lanes * dtype.bytes()` bytes apart. Even for [`Dtype::Bf16`].
    pub lanes: usize,
    /// The element type of the input and the weights.
    pub dtype: Dtype,
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
/// Valid only while the [`super::tileset::TileCode`] it came from is alive.
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
fn fits_i32(v: i64) -> bool {
    i32::try_from(v).is_ok()
}

impl TileSpec {
    /// Multiply-adds times two: the FLOPs of one call (of a valid spec).
    pub fn flops(&self) -> u64 {
        2 * (self.m * self.nr * 16 * self.kc * self.kh * self.kw * self.lanes) as u64
    }

    /// Bytes of packed weights one call reads (`kc*kh*kw*lanes*nr*16` elements; of a valid
    /// spec).
    pub fn weight_bytes(&self) -> usize {
        self.kc * self.kh * self.kw * self.lanes * self.nr * 16 * self.dtype.bytes()
    }

    /// Bytes between two input pixels.
    pub fn pixel_bytes(&self) -> usize {
        self.lanes * self.dtype.bytes()
    }

    /// Reduction steps of one kernel tap: one instruction per output block and pixel each.
    pub fn steps_per_tap(&self) -> usize {
        self.lanes / self.dtype.lanes_per_step()
    }

    /// Checks the limits of the contract, given what an ISA's registers allow for this
    /// `m x nr` (`blocking`: [`super::x86::TileIsa::blocking`]), and that every displacement
    /// and immediate the code needs fits in 32 bits. [`TileSpec::validate`] (in
    /// [`super::isa`]) asks the ISA.
    pub fn check(&self, blocking: std::result::Result<usize, String>) -> Result<()> {
        let bad = |why: String| Err(Error::Invalid(format!("tile {self:?}: {why}")));
        if self.m == 0 || self.kc == 0 || self.kh == 0 || self.kw == 0 || self.sw == 0 {
            return bad("m, kc, kh, kw and sw must be at least 1".into());
        }
        if !(1..=16).contains(&self.lanes) {
            return bad(format!("lanes must be 1..=16, found {}", self.lanes));
        }
        if !self.lanes.is_multiple_of(self.dtype.lanes_per_step()) {
            return bad(format!("{:?} lanes come in pairs, found {}", self.dtype, self.lanes));
        }
        if !(1..=4).contains(&self.nr) {
            return bad(format!("nr must be 1..=4, found {}", self.nr));
        }
        // Instructions per input lane of one tap, weight loads included.
        let per_lane = match blocking {
            Ok(n) => n,
            Err(why) => return bad(why),
        };
        let body = self.kw.saturating_mul(self.steps_per_tap() * per_lane);
        if body > MAX_BODY_INSTRUCTIONS {
            return bad(format!("an unrolled kernel row of {body} instructions exceeds {MAX_BODY_INSTRUCTIONS}"));
        }
        // m, nr and kw are small now; sw, kc and the strides may be anything.
        let big = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        let in_reach =
            big((self.m - 1).saturating_mul(self.sw).saturating_add(self.kw).saturating_mul(self.pixel_bytes()));
        let w_bytes = big(self
            .kc
            .saturating_mul(self.kh)
            .saturating_mul(self.kw * self.lanes * self.nr * 16 * self.dtype.bytes()));
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
}
