//! Memory layouts of feature maps, chosen per tensor by the `select-layout` pass.

use std::fmt;

/// How the elements of a `[N, C, H, W]` tensor are laid out in memory.
///
/// Flat `[N, F]` tensors are always [`Layout::Nchw`] (plain row-major). A blocked layout
/// `Nchw{b}c` stores `[N, C/b, H, W, b]`: the channel count of a tensor in it is a multiple
/// of `b` (the verifier run by the pass manager checks this).
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug, Default, serde::Serialize)]
pub enum Layout {
    /// Plain row-major `[N, C, H, W]`, the layout of inputs, outputs and lowered graphs.
    #[default]
    Nchw,
    /// `[N, C/4, H, W, 4]`: 4 channels per vector (SSE / NEON width in f32).
    Nchw4c,
    /// `[N, C/16, H, W, 16]`: 16 channels per vector (AVX-512 width in f32).
    Nchw16c,
}

impl Layout {
    /// Channels per block (1 for `Nchw`).
    pub fn block(self) -> usize {
        match self {
            Layout::Nchw => 1,
            Layout::Nchw4c => 4,
            Layout::Nchw16c => 16,
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Nchw => "nchw",
            Layout::Nchw4c => "nchw4c",
            Layout::Nchw16c => "nchw16c",
        })
    }
}
