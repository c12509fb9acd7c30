//! Memory layouts of feature maps, chosen per tensor by the `select-layout` pass.

use std::fmt;

/// Channels per block of [`Layout::Nchw16c`]: one AVX-512 vector of f32. Every part of incc
/// that lays out, packs or reads channel blocks uses this one constant.
pub const BLOCK: usize = 16;

/// How the elements of a `[N, C, H, W]` tensor are laid out in memory: the layouts the
/// runtime has kernels for.
///
/// Flat `[N, F]` tensors are always [`Layout::Nchw`] (plain row-major). A feature map the
/// `select-layout` pass has not annotated (`-O0`, or the pass disabled) is stored in the
/// runtime's default, [`Layout::Nchw16c`].
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug, Default, serde::Serialize)]
pub enum Layout {
    /// Plain row-major `[N, C, H, W]`, the layout of inputs, outputs and lowered graphs.
    #[default]
    Nchw,
    /// `[N, ceil(C/16), H, W, 16]`: 16 channels per vector (AVX-512 width in f32), the
    /// channels rounded up to 16 with zeros.
    Nchw16c,
    /// Compact `[N, H+pads, W+pads, C]` with the zero border its reader needs: a network
    /// input of fewer than 16 channels read by one convolution, which then reduces over `C`
    /// lanes per pixel instead of a 16-channel block.
    Nhwc,
}

impl Layout {
    /// Channels per block (1 for `Nchw`).
    pub fn block(self) -> usize {
        match self {
            Layout::Nchw => 1,
            Layout::Nchw16c => BLOCK,
            Layout::Nhwc => 1,
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Nchw => "nchw",
            Layout::Nchw16c => "nchw16c",
            Layout::Nhwc => "nhwc",
        })
    }
}
